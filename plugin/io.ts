// Where commands write and how they wait: injected, so commands run in unit tests without a
// terminal or a clock.
export interface IO {
  /** Results: tables, objects, the outcome of an action. */
  out(text: string): void;
  /** Progress while waiting, and warnings. */
  err(text: string): void;
  now(): Date;
  sleep(ms: number): Promise<void>;
}

export const processIO: IO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  now: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Parses a duration as kubectl does: 90s, 5m, 1h, 1h30m, or plain seconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let seen = 0;
  while ((m = re.exec(t))) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
    seen = re.lastIndex;
  }
  if (seen === 0 || seen !== t.length) throw new Error(`${JSON.stringify(text)} is not a duration (e.g. 90s, 5m, 1h)`);
  return Math.round(total);
}
