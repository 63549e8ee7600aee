// Fault injection for the fake driver: an Instance annotation names driver steps that fail
// for that instance, so anyone can watch kubenova handle a failed boot, migration or start
// without a broken hypervisor. Only the fake driver honours it; the libvirt driver ignores it.
//
//   fake.kubenova.io/fail: spawn,migrate-out      # these steps fail on every host
//   fake.kubenova.io/fail: spawn@node-a           # spawn fails only on node-a
//
// The key, the step names and the parser live here, once; the agent keeps an index of the
// annotated instances (node-agent/driver/injected-failures.ts) that the fake driver asks.

export const FAIL_ANNOTATION = 'fake.kubenova.io/fail';

/** The driver steps that can be made to fail, as users write them. */
export const FAIL_STEPS = ['spawn', 'migrate-out', 'finish-migration', 'revert', 'power-on'] as const;
export type FailStep = (typeof FAIL_STEPS)[number];

/** One entry of the annotation: a step, on every host or only on `host`. */
export interface FailRule {
  step: FailStep;
  host?: string;
}

export interface ParsedFailures {
  rules: FailRule[];
  /** Entries naming no known step (or an empty host), as written; they are ignored. */
  unknown: string[];
}

const isStep = (s: string): s is FailStep => (FAIL_STEPS as readonly string[]).includes(s);

/**
 * Parses the annotation's value: entries separated by commas, each `<step>` or `<step>@<host>`,
 * spaces around them ignored. Entries that name no known step are returned in `unknown`.
 */
export function parseFailAnnotation(value: string | undefined): ParsedFailures {
  const rules: FailRule[] = [];
  const unknown: string[] = [];
  for (const raw of (value ?? '').split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const at = entry.indexOf('@');
    const step = (at < 0 ? entry : entry.slice(0, at)).trim();
    const host = at < 0 ? undefined : entry.slice(at + 1).trim();
    if (!isStep(step) || host === '') unknown.push(entry);
    else rules.push(host === undefined ? { step } : { step, host });
  }
  return { rules, unknown };
}

/** The steps that fail on `host` under these rules. */
export function failingStepsOn(rules: readonly FailRule[], host: string): ReadonlySet<FailStep> {
  return new Set(rules.filter((r) => r.host === undefined || r.host === host).map((r) => r.step));
}

/** What the failed driver call says, so nobody mistakes it for a real hypervisor error. */
export function injectedFailureMessage(step: FailStep): string {
  return `injected failure: the instance's annotation ${FAIL_ANNOTATION} makes ${step} fail`;
}
