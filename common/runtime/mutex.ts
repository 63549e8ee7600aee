// The per-node lock of Nova's resource tracker (COMPUTE_RESOURCE_SEMAPHORE): claims,
// releases and audits of one host run one at a time.
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
