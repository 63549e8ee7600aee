// A driver step that ends quickly needs no status write announcing it: the write that records
// its result says everything. Only a slow one is announced first (taskState spawning,
// resize_finish), so a user sees what is taking the time; the writes a fast step saves are a
// boot's or a resize's largest share of API traffic after the ones that change state.

/** A step still running after this long is announced. */
export const SLOW_STEP_REPORT_AFTER_MS = 1_000;

/**
 * Whether `work` is still running after `ms`. It is not waited for beyond that; the caller
 * awaits it for its result or failure.
 */
export async function slowerThan(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<true>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([
      work.then(
        () => false as const,
        () => false as const,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
