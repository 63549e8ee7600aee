// Builders for the scheduler's unit tests: a host and a request with sensible defaults, so each
// test states only the fields its promise depends on.
import { resourcesOf } from '../../common/api/flavor.js';
import type { FlavorSnapshot } from '../../common/api/types.js';
import type { HostState } from './host-state.js';
import type { RequestSpec } from './request.js';

export function aHost(overrides: Partial<HostState> & { name: string }): HostState {
  return {
    labels: {},
    disabled: false,
    ready: true,
    allocatable: { vcpus: 16, memoryMiB: 32768, diskGiB: 500 },
    allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
    ...overrides,
  };
}

/** `flavor` is partial here; `resources` follows the flavor unless given. */
export function aRequest(
  overrides: Partial<Omit<RequestSpec, 'flavor'>> & { flavor?: Partial<FlavorSnapshot> } = {},
): RequestSpec {
  const flavor: FlavorSnapshot = {
    name: 'm1.small',
    vcpus: 1,
    memoryMiB: 2048,
    rootDiskGiB: 20,
    ephemeralDiskGiB: 0,
    ...overrides.flavor,
  };
  return {
    instance: 'default/vm-1',
    ignoreHosts: [],
    ...overrides,
    flavor,
    resources: overrides.resources ?? resourcesOf(flavor),
  };
}
