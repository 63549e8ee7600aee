import { describe, expect, it } from 'vitest';
import { aHost, aRequest } from '../testing.js';
import { ComputeCapabilitiesFilter } from './compute-capabilities-filter.js';

describe('ComputeCapabilitiesFilter', () => {
  const gpuHost = aHost({ name: 'a', labels: { 'hw/gpu': 'a100', tier: 'gold' } });

  it('passes a host whose labels equal every node:<label> extra spec', () => {
    const request = aRequest({ flavor: { extraSpecs: { 'node:hw/gpu': 'a100', 'node:tier': 'gold' } } });
    expect(ComputeCapabilitiesFilter.passes(gpuHost, request)).toEqual({ pass: true });
  });

  it('ignores extra spec keys without the node: prefix', () => {
    const request = aRequest({
      flavor: { extraSpecs: { 'hw:cpu_policy': 'dedicated', 'quota:disk_read_bytes_sec': '1000' } },
    });
    expect(ComputeCapabilitiesFilter.passes(aHost({ name: 'plain' }), request)).toEqual({ pass: true });
  });

  it('rejects a host whose label has another value and names the spec, the wanted and the actual value', () => {
    const request = aRequest({ flavor: { extraSpecs: { 'node:tier': 'silver' } } });
    expect(ComputeCapabilitiesFilter.passes(gpuHost, request)).toEqual({
      pass: false,
      reason: 'flavor extra spec node:tier requires label tier="silver", host has "gold"',
    });
  });

  it('rejects a host that lacks the label altogether', () => {
    const request = aRequest({ flavor: { extraSpecs: { 'node:hw/gpu': 'a100' } } });
    expect(ComputeCapabilitiesFilter.passes(aHost({ name: 'plain' }), request)).toEqual({
      pass: false,
      reason: 'flavor extra spec node:hw/gpu requires label hw/gpu="a100", host has no such label',
    });
  });
});
