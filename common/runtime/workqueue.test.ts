import { describe, expect, it } from 'vitest';
import { WorkQueue } from './workqueue.js';
import { sleep } from './sleep.js';

describe('work queue', () => {
  it('queues a waiting key once however often it is added', async () => {
    const seen: string[] = [];
    const q = new WorkQueue(
      async (k) => {
        seen.push(k);
        return {};
      },
      { workers: 1 },
    );
    q.add('a');
    q.add('b');
    q.add('b');
    q.add('b');
    await q.idle();
    expect(seen.sort()).toEqual(['a', 'b']);
  });

  it('never runs one key on two workers at once, and runs it again if it changed meanwhile', async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const q = new WorkQueue(
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        runs++;
        await sleep(20);
        running--;
        return {};
      },
      { workers: 4 },
    );
    q.add('k');
    await sleep(5);
    q.add('k');
    q.add('k');
    await sleep(100);
    await q.idle();
    expect(maxRunning).toBe(1);
    expect(runs).toBe(2);
  });

  it('a key waiting a long while is run at the earlier time when asked again sooner (a conflict retry is not lost)', async () => {
    const seen: string[] = [];
    const q = new WorkQueue(
      async (k) => {
        seen.push(k);
        return {};
      },
      { workers: 1 },
    );
    q.addAfter('k', 60_000);
    q.addAfter('k', 10);
    await sleep(50);
    await q.idle();
    expect(seen).toEqual(['k']);
    await q.shutdown();
  });

  it('retries a failing key with growing backoff', async () => {
    const times: number[] = [];
    const q = new WorkQueue(
      async () => {
        times.push(Date.now());
        if (times.length < 3) throw new Error('not yet');
        return {};
      },
      { workers: 1, baseBackoffMs: 10 },
    );
    q.add('k');
    while (times.length < 3) await sleep(5);
    await q.idle();
    expect(times).toHaveLength(3);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(times[1]! - times[0]!);
    await q.shutdown();
  });
});

describe('work queue in-flight work', () => {
  it('reports the keys being processed, their seconds together and the longest, and nothing once they end', async () => {
    let now = 1_000_000;
    const release = new Map<string, () => void>();
    const q = new WorkQueue(
      (key) =>
        new Promise((resolve) => {
          release.set(key, () => resolve({}));
        }),
      { workers: 2, now: () => now },
    );
    expect(q.inFlight()).toEqual({ count: 0, unfinishedSeconds: 0, longestSeconds: 0 });
    q.add('a');
    now += 3_000;
    q.add('b');
    now += 2_000;
    // a has run 5 s, b 2 s.
    expect(q.inFlight()).toEqual({ count: 2, unfinishedSeconds: 7, longestSeconds: 5 });
    release.get('a')!();
    await sleep(0);
    expect(q.inFlight()).toEqual({ count: 1, unfinishedSeconds: 2, longestSeconds: 2 });
    release.get('b')!();
    await q.idle();
    expect(q.inFlight()).toEqual({ count: 0, unfinishedSeconds: 0, longestSeconds: 0 });
  });
});
