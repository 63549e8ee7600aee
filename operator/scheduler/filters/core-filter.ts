import { free } from '../host-state.js';
import type { HostFilter } from './filter.js';
import { fits } from './filter.js';

/** Nova's CoreFilter (vCPUs); allocatable already carries cpu_allocation_ratio and reserved vCPUs. */
export const CoreFilter: HostFilter = {
  name: 'CoreFilter',
  passes(host, request) {
    return fits('vcpus', free(host).vcpus, request.resources.vcpus, '');
  },
};
