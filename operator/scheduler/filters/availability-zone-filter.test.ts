import { describe, expect, it } from 'vitest';
import { ZONE_LABEL } from '../../../common/api/types.js';
import { aHost, aRequest } from '../testing.js';
import { AvailabilityZoneFilter } from './availability-zone-filter.js';

describe('AvailabilityZoneFilter', () => {
  const inZoneA = aHost({ name: 'a', labels: { [ZONE_LABEL]: 'zone-a' } });
  const unlabelled = aHost({ name: 'u' });

  it('passes every host, labelled or not, when the request names no zone', () => {
    expect(AvailabilityZoneFilter.passes(inZoneA, aRequest())).toEqual({ pass: true });
    expect(AvailabilityZoneFilter.passes(unlabelled, aRequest({ availabilityZone: '' }))).toEqual({ pass: true });
  });

  it('passes a host labelled with the requested zone', () => {
    expect(AvailabilityZoneFilter.passes(inZoneA, aRequest({ availabilityZone: 'zone-a' }))).toEqual({ pass: true });
  });

  it('rejects a host in another zone and names both zones', () => {
    expect(AvailabilityZoneFilter.passes(inZoneA, aRequest({ availabilityZone: 'zone-b' }))).toEqual({
      pass: false,
      reason: 'host zone "zone-a" is not the requested zone "zone-b"',
    });
  });

  it('rejects a host without a zone label and names the label it looked for', () => {
    expect(AvailabilityZoneFilter.passes(unlabelled, aRequest({ availabilityZone: 'zone-b' }))).toEqual({
      pass: false,
      reason: 'host has no topology.kubernetes.io/zone label, requested zone "zone-b"',
    });
  });
});
