import { free } from '../host-state.js';
import type { HostFilter } from './filter.js';
import { fits } from './filter.js';

/** Nova's DiskFilter: root plus ephemeral disk (resourcesOf) against the host's free disk. */
export const DiskFilter: HostFilter = {
  name: 'DiskFilter',
  passes(host, request) {
    return fits('disk', free(host).diskGiB, request.resources.diskGiB, 'GiB');
  },
};
