// The claims one node holds, as Nova's resource tracker keeps them: every create on this
// host is preceded by a claim here, and the whole list is what the agent writes into
// ComputeNode status. Pure (no clock, no I/O) so the agent can rebuild it from status after
// a restart and replay any step without double counting.
import type { Claim, ClaimKind, ResourceAmounts } from '../../common/api/types.js';
import { ClaimFailed, allocatedOf, shortfalls } from './claims.js';
import { compareCodeUnits as cmp } from '../../common/order.js';

const keyOf = (consumer: string, kind: ClaimKind): string => `${kind}\u0000${consumer}`;

function sameAmounts(a: Claim, b: Claim): boolean {
  return a.vcpus === b.vcpus && a.memoryMiB === b.memoryMiB && a.diskGiB === b.diskGiB;
}

function assertValidAmounts(c: Claim): void {
  for (const v of [c.vcpus, c.memoryMiB, c.diskGiB]) {
    // A negative or non-numeric amount would shrink `allocated` and let later claims
    // overcommit the host, so it is a bug to stop here, not a shortfall to report.
    if (!Number.isFinite(v) || v < 0) {
      throw new RangeError(
        `claim ${c.kind}/${c.consumer} has an invalid amount: ${c.vcpus} vcpus, ${c.memoryMiB} MiB, ${c.diskGiB} GiB`,
      );
    }
  }
}

export class ClaimLedger {
  readonly #byKey = new Map<string, Claim>();

  /**
   * Duplicates (same consumer and kind) in `claims` collapse to the last one, so a status written
   * twice is not counted twice.
   */
  constructor(claims: readonly Claim[]) {
    for (const c of claims) this.#byKey.set(keyOf(c.consumer, c.kind), { ...c });
  }

  /** A copy, sorted by consumer then kind, so status writes do not churn when nothing changed. */
  get claims(): Claim[] {
    return [...this.#byKey.values()]
      .map((c) => ({ ...c }))
      .sort((a, b) => cmp(a.consumer, b.consumer) || cmp(a.kind, b.kind));
  }

  /** Whether any claim matches, without copying or sorting (asked on every watch event). */
  some(match: (c: Readonly<Claim>) => boolean): boolean {
    for (const c of this.#byKey.values()) if (match(c)) return true;
    return false;
  }

  has(consumer: string, kind: ClaimKind): boolean {
    return this.#byKey.has(keyOf(consumer, kind));
  }

  /**
   * Records `c` or throws ClaimFailed and leaves the ledger as it was.
   * Claiming again with the same amounts is a no-op (the original record, including its
   * createdAt, is kept). Different amounts replace the old claim, tested against what the
   * other claims leave free, because the old amounts are given back in the same step.
   */
  claim(host: string, allocatable: ResourceAmounts, c: Claim): void {
    assertValidAmounts(c);
    const key = keyOf(c.consumer, c.kind);
    const existing = this.#byKey.get(key);
    if (existing && sameAmounts(existing, c)) return;
    const others = [...this.#byKey.entries()].filter(([k]) => k !== key).map(([, v]) => v);
    const short = shortfalls(allocatable, allocatedOf(others), c);
    if (short.length > 0) throw new ClaimFailed(host, short);
    this.#byKey.set(key, { ...c });
  }

  /** Without `kind`, frees every claim of the consumer. Safe to repeat; true when something was removed. */
  release(consumer: string, kind?: ClaimKind): boolean {
    const kinds: ClaimKind[] = kind ? [kind] : ['instance', 'migration'];
    let removed = false;
    for (const k of kinds) removed = this.#byKey.delete(keyOf(consumer, k)) || removed;
    return removed;
  }

  allocated(): ResourceAmounts {
    return allocatedOf([...this.#byKey.values()]);
  }
}
