import { ZONE_LABEL } from '../../../common/api/types.js';
import type { HostFilter } from './filter.js';
import { PASS, fail } from './filter.js';

/** Nova's AvailabilityZoneFilter, with the zone taken from the standard Kubernetes topology label. */
export const AvailabilityZoneFilter: HostFilter = {
  name: 'AvailabilityZoneFilter',
  passes(host, request) {
    const wanted = request.availabilityZone;
    // An empty string is how an unset field often arrives from YAML; treat it as "any zone".
    if (wanted === undefined || wanted === '') return PASS;
    const zone = host.labels[ZONE_LABEL];
    if (zone === wanted) return PASS;
    if (zone === undefined) return fail(`host has no ${ZONE_LABEL} label, requested zone "${wanted}"`);
    return fail(`host zone "${zone}" is not the requested zone "${wanted}"`);
  },
};
