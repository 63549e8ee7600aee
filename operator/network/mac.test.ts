import { describe, expect, it } from 'vitest';
import { newMac } from './mac.js';

describe('port MAC addresses', () => {
  it('are locally administered unicast addresses in fa:16:3e', () => {
    const mac = newMac(() => false);
    expect(mac).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);
    const first = parseInt(mac.slice(0, 2), 16);
    expect(first & 0b10).toBe(0b10);
    expect(first & 0b01).toBe(0);
  });

  it('are drawn again when the first draw is taken', () => {
    const draws = [Uint8Array.of(0, 0, 1), Uint8Array.of(0, 0, 2)];
    const mac = newMac(
      (m) => m === 'fa:16:3e:00:00:01',
      () => draws.shift()!,
    );
    expect(mac).toBe('fa:16:3e:00:00:02');
  });

  it('are never the same among ten thousand drawn against what was drawn before', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) seen.add(newMac((m) => seen.has(m)));
    expect(seen.size).toBe(10_000);
  });
});
