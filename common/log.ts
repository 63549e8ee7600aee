// pino JSON logs; every line about a resource carries instance / migration / node / step
// so one grep follows a task across the operator and the agents.
import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

export interface LogOptions {
  component: string;
  level?: string;
  /** Human-readable output (npm start); JSON otherwise. */
  pretty?: boolean;
  node?: string;
}

export function createLogger(opts: LogOptions, destination?: pino.DestinationStream): Logger {
  const base = { component: opts.component, ...(opts.node ? { node: opts.node } : {}) };
  const level = (opts.level ?? process.env.LOG_LEVEL ?? 'info') as LevelWithSilent;
  if (opts.pretty ?? process.env.LOG_FORMAT === 'pretty') {
    return pino({
      level,
      base,
      transport: {
        target: 'pino-pretty',
        options: {
          colorize: process.stdout.isTTY,
          ignore: 'pid,hostname,component',
          singleLine: true,
          translateTime: 'SYS:HH:MM:ss.l',
          destination: 1,
        },
      },
    });
  }
  // Levels as words ("warn", not 40): what log collectors and people filter on.
  return pino(
    {
      level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
