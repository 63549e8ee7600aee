import { free } from '../host-state.js';
import type { HostFilter } from './filter.js';
import { fits } from './filter.js';

/** Nova's RamFilter; allocatable already carries ram_allocation_ratio and reserved memory. */
export const RamFilter: HostFilter = {
  name: 'RamFilter',
  passes(host, request) {
    return fits('memory', free(host).memoryMiB, request.resources.memoryMiB, 'MiB');
  },
};
