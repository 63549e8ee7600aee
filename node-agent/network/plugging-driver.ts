// The driver as the agent's reconcilers see it: every operation that may start a guest first
// plugs its NICs into this host's data plane, as Nova's libvirt driver calls plug_vifs from
// spawn, finish_migration, finish_revert_migration and power_on. One wrapper instead of a plug
// beside each call, so no start path (a boot, a resize landing, a revert, a power-on, an
// evacuation's rebuild) can forget it.
import type { DomainInfo, DomainSpec, GuestInfo, MigrationExport, NicSpec, VirtDriver } from '../driver/driver.js';
import type { HostNetwork } from './host-network.js';

export class PluggingDriver implements VirtDriver {
  constructor(
    private readonly inner: VirtDriver,
    readonly network: HostNetwork,
  ) {}

  get kind(): VirtDriver['kind'] {
    return this.inner.kind;
  }

  /** The NICs a start of `spec` will have: the ones it names, else the domain's own. */
  async #nicsOf(spec: DomainSpec): Promise<readonly NicSpec[]> {
    if (spec.nics) return spec.nics;
    return (await this.inner.get(spec.uid))?.nics ?? [];
  }

  /**
   * Plugs `nics`, then runs the start; the bridges count as in use until it has ended (its
   * domain defined, or it failed), so the audit never removes one under a start in progress.
   */
  async #plugged<T>(nics: readonly NicSpec[], start: () => Promise<T>): Promise<T> {
    await this.network.plug(nics);
    try {
      return await start();
    } finally {
      this.network.settled(nics);
    }
  }

  async spawn(spec: DomainSpec): Promise<DomainInfo> {
    return this.#plugged(await this.#nicsOf(spec), () => this.inner.spawn(spec));
  }

  async powerOn(uid: string): Promise<DomainInfo> {
    return this.#plugged((await this.inner.get(uid))?.nics ?? [], () => this.inner.powerOn(uid));
  }

  async finishMigration(spec: DomainSpec, opts: { receivedDir?: string; powerOn: boolean }): Promise<DomainInfo> {
    // A received directory carries its NICs in its definition, but the agent always names them
    // (from the Instance's ports); an unnamed set on a same-host resize is the domain's own.
    return this.#plugged(await this.#nicsOf(spec), () => this.inner.finishMigration(spec, opts));
  }

  async revertMigration(spec: DomainSpec, opts: { powerOn: boolean }): Promise<DomainInfo> {
    return this.#plugged(await this.#nicsOf(spec), () => this.inner.revertMigration(spec, opts));
  }

  capacity(): ReturnType<VirtDriver['capacity']> {
    return this.inner.capacity();
  }

  maxDiskBytes(flavor: Parameters<VirtDriver['maxDiskBytes']>[0]): number {
    return this.inner.maxDiskBytes(flavor);
  }

  powerOff(uid: string): Promise<DomainInfo> {
    return this.inner.powerOff(uid);
  }

  destroy(uid: string): Promise<void> {
    return this.inner.destroy(uid);
  }

  get(uid: string): Promise<DomainInfo | undefined> {
    return this.inner.get(uid);
  }

  list(): Promise<DomainInfo[]> {
    return this.inner.list();
  }

  guestReport(uid: string): Promise<GuestInfo | undefined> {
    return this.inner.guestReport(uid);
  }

  instanceDir(uid: string): string {
    return this.inner.instanceDir(uid);
  }

  migrateOut(uid: string): Promise<MigrationExport> {
    return this.inner.migrateOut(uid);
  }

  confirmMigration(uid: string, sameHost: boolean): Promise<void> {
    return this.inner.confirmMigration(uid, sameHost);
  }

  hasBackup(uid: string): Promise<boolean> {
    return this.inner.hasBackup(uid);
  }
}
