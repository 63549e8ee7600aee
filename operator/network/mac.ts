// MAC addresses for ports, in fa:16:3e:xx:xx:xx as Neutron makes them: a locally administered
// unicast prefix (bit 1 of the first octet set, bit 0 clear), so they never collide with a
// vendor's burned-in address. The last three octets are random; one already held by a Port
// (or handed out by this process and not yet seen in the cache) is drawn again, as Neutron
// retries on its unique (network, mac) constraint.
import { randomBytes } from 'node:crypto';

export const MAC_PREFIX = 'fa:16:3e';

const hex = (b: number) => b.toString(16).padStart(2, '0');

export type RandomBytes = (n: number) => Uint8Array;

/** Draws until `taken` says no; 16.7 million addresses make more than a few draws vanishingly rare. */
export function newMac(taken: (mac: string) => boolean, random: RandomBytes = randomBytes, maxDraws = 64): string {
  for (let i = 0; i < maxDraws; i++) {
    const mac = `${MAC_PREFIX}:${[...random(3)].map(hex).join(':')}`;
    if (!taken(mac)) return mac;
  }
  throw new Error(`no free MAC address in ${MAC_PREFIX} after ${maxDraws} draws`);
}
