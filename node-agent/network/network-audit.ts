// The data plane's share of the agent's audit: the bridges no domain on this host names any
// more go (after a confirm deleted the source's copy, an instance's deletion, a crash between a
// plug and a failed spawn). It reads what is, not what an earlier run recorded, so it is right
// after any crash.
import type { VirtDriver } from '../driver/driver.js';
import type { HostNetwork } from './host-network.js';

export async function pruneUnusedBridges(driver: Pick<VirtDriver, 'list'>, network: HostNetwork): Promise<string[]> {
  // Every defined domain, running or not: a stopped guest or a migrated-away original kept for
  // a revert starts on its bridges again.
  const inUse = new Set((await driver.list()).flatMap((d) => d.nics.map((n) => n.bridge)));
  return network.prune(inUse);
}
