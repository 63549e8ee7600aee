// The agent's index of Instances carrying the fake.kubenova.io/fail annotation, by uid, fed by
// the Instance informer's events: the fake driver asks it on every spawn, power-on and
// migration step, so a lookup is one map read, and an instance without the annotation costs
// nothing beyond checking for it when it changes.
import {
  FAIL_ANNOTATION,
  FAIL_STEPS,
  failingStepsOn,
  parseFailAnnotation,
  type FailRule,
  type FailStep,
} from '../../common/api/fault-injection.js';
import type { Instance } from '../../common/api/types.js';
import type { WatchedCache } from '../../common/kube/api.js';
import type { Logger } from '../../common/log.js';

const NONE: ReadonlySet<FailStep> = new Set();

export class InjectedFailures {
  /** uid -> the rules of its annotation; only instances whose annotation names a known step. */
  readonly #rules = new Map<string, FailRule[]>();
  /** uid -> the annotation value whose unknown entries were already logged (once per value). */
  readonly #reported = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  /** Keeps the index in step with the cache's Instances. */
  watch(instances: WatchedCache<'Instance'>): void {
    instances.on('add', (i) => this.observe(i));
    instances.on('update', (i) => this.observe(i));
    instances.on('delete', (i) => this.forget(i));
  }

  /** An Instance as it now is. */
  observe(inst: Instance): void {
    const uid = inst.metadata.uid;
    if (!uid) return;
    const value = inst.metadata.annotations?.[FAIL_ANNOTATION];
    if (value === undefined) {
      this.forget(inst);
      return;
    }
    const { rules, unknown } = parseFailAnnotation(value);
    if (rules.length > 0) this.#rules.set(uid, rules);
    else this.#rules.delete(uid);
    if (unknown.length === 0) this.#reported.delete(uid);
    else if (this.#reported.get(uid) !== value) {
      this.#reported.set(uid, value);
      this.log.warn(
        { instance: `${inst.metadata.namespace}/${inst.metadata.name}`, ignored: unknown, steps: FAIL_STEPS },
        `${FAIL_ANNOTATION}: ignoring entries that name no known step (${unknown.join(', ')})`,
      );
    }
  }

  /** An Instance that is gone. */
  forget(inst: Instance): void {
    const uid = inst.metadata.uid;
    if (!uid) return;
    this.#rules.delete(uid);
    this.#reported.delete(uid);
  }

  /** The steps that fail for instance `uid` on `host`. */
  stepsFor(uid: string, host: string): ReadonlySet<FailStep> {
    const rules = this.#rules.get(uid);
    return rules ? failingStepsOn(rules, host) : NONE;
  }

  /** How many instances carry the annotation with a known step. */
  get size(): number {
    return this.#rules.size;
  }
}
