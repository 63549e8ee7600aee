import type { HostState } from '../host-state.js';
import type { RequestSpec } from '../request.js';

export type FilterResult = { pass: true } | { pass: false; reason: string };

/** One Nova host filter: `name` is Nova's class name, so logs and faults read like Nova's. */
export interface HostFilter {
  readonly name: string;
  passes(host: HostState, request: RequestSpec): FilterResult;
}

export const PASS: FilterResult = Object.freeze({ pass: true });

export function fail(reason: string): FilterResult {
  return { pass: false, reason };
}

/** The shared test of the resource filters, so all three word their reason alike. */
export function fits(what: string, freeAmount: number, requested: number, unit: string): FilterResult {
  if (requested <= freeAmount) return PASS;
  const u = unit === '' ? '' : ` ${unit}`;
  return fail(`free ${what} ${freeAmount}${u} < requested ${requested}${u}`);
}
