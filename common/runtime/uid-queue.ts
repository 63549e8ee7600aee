/**
 * Runs a driver's operations on one uid one after another (operations on different uids run
 * concurrently), so two concurrent spawns cannot each write a different first-boot marker
 * and a destroy issued after a slow spawn finds the domain it is meant to remove.
 */
export class UidQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(uid) ?? Promise.resolve();
    const run = previous.then(fn);
    // A failed operation does not fail the ones queued after it.
    const tail = run.catch(() => undefined);
    this.#tails.set(uid, tail);
    try {
      return await run;
    } finally {
      if (this.#tails.get(uid) === tail) this.#tails.delete(uid);
    }
  }
}
