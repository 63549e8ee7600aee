import { describe, expect, it } from 'vitest';
import { ConfigError, HelpRequested, parseFlags, parseLabels } from './config.js';

const specs = {
  port: { type: 'number', default: 8080, min: 1, description: 'port', env: 'PORT' },
  mode: { type: 'string', choices: ['a', 'b'], description: 'mode' },
  verbose: { type: 'boolean', default: false, description: 'verbose' },
} as const;

describe('flags', () => {
  it('takes flags over environment over defaults', () => {
    expect(parseFlags(specs, [], {})).toEqual({ port: 8080, mode: undefined, verbose: false });
    expect(parseFlags(specs, [], { PORT: '9' }).port).toBe(9);
    expect(parseFlags(specs, ['--port=10'], { PORT: '9' }).port).toBe(10);
  });

  it('names the flag and what it expected when a value is wrong', () => {
    expect(() => parseFlags(specs, ['--port=abc'], {})).toThrow(
      new ConfigError('--port: expected a number, got "abc"'),
    );
    expect(() => parseFlags(specs, ['--port=0'], {})).toThrow('--port: must be >= 1, got 0');
    expect(() => parseFlags(specs, ['--mode=c'], {})).toThrow('--mode: must be one of a, b, got "c"');
    expect(() => parseFlags(specs, ['--nope'], {})).toThrow(ConfigError);
  });

  it('answers --help and -h with every flag, its env variable and its default', () => {
    for (const flag of ['--help', '-h']) {
      let caught: unknown;
      try {
        parseFlags(specs, [flag], {});
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(HelpRequested);
      const text = (caught as Error).message;
      expect(text).toContain('--port <number>  port [env PORT] (default 8080)');
      expect(text).toContain('--mode <string>  mode');
      expect(text).toContain('--verbose  verbose (default false)');
    }
  });

  it('parses labels and refuses a label without a value', () => {
    expect(parseLabels('a=1, b=x=y')).toEqual({ a: '1', b: 'x=y' });
    expect(() => parseLabels('novalue')).toThrow('label "novalue" must look like key=value');
  });
});
