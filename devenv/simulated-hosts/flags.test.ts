import { describe, expect, it } from 'vitest';
import { parseFlags } from '../../common/config.js';
import { parseAgentConfig } from '../../node-agent/config.js';
import { SIMULATION_FLAGS, splitArgs } from './flags.js';

describe('simulated-hosts flags', () => {
  it('takes its own flags, in either form, and leaves the rest to the node agent', () => {
    const { own, agent } = splitArgs([
      '--hosts=10',
      '--state-dir',
      'agents',
      '--host-offset',
      '20',
      '--heartbeat-interval=2',
      '--host-prefix=bench',
      '--api-keepalive',
    ]);
    expect(own).toEqual(['--hosts=10', '--host-offset', '20', '--host-prefix=bench']);
    expect(agent).toEqual(['--state-dir', 'agents', '--heartbeat-interval=2', '--api-keepalive']);
    expect(parseFlags(SIMULATION_FLAGS, own, {})).toEqual({ hosts: 10, 'host-offset': 20, 'host-prefix': 'bench' });
    const config = parseAgentConfig(agent, {});
    expect(config['state-dir']).toBe('agents');
    expect(config['heartbeat-interval']).toBe(2);
  });

  it('is not a node agent flag: the node agent refuses --hosts', () => {
    expect(() => parseAgentConfig(['--hosts=3'], {})).toThrow(/hosts/);
  });
});
