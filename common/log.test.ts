import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './log.js';

describe('JSON logs', () => {
  it('name the level in words and carry the component', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger({ component: 'operator', level: 'info', pretty: false }, sink);
    log.warn({ instance: 'default/web-1' }, 'claim failed');
    const line = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'warn',
      component: 'operator',
      instance: 'default/web-1',
      msg: 'claim failed',
    });
  });
});
