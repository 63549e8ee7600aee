// The one interface the agent drives a hypervisor through (Nova's virt/driver.py, KubeVirt's
// virtwrap), so the tracker and the agent's reconcilers do not know whether domains are
// fake directories or libvirt guests.
import type { FlavorSnapshot, PowerState, ResourceAmounts } from '../../common/api/types.js';

export interface DomainSpec {
  /** The Instance UID; it names the domain and its directory, so it is stable across renames and moves. */
  uid: string;
  /** namespace/name of the Instance, for people. */
  name: string;
  flavor: FlavorSnapshot;
  image: string;
  /**
   * The guest's network interfaces, one per Port, in the order the guest numbers them. Absent
   * means "keep what the domain has" (none for a new domain), so a step that does not know the
   * ports (a power-on) never takes a NIC away; [] removes them all.
   */
  nics?: NicSpec[];
}

/**
 * One virtual NIC: a Port plugged into its network's bridge on this host (Nova's VIF). The MAC
 * and address are the Port's and never change while it moves between hosts; the bridge is this
 * host's for the network (node-agent/network).
 */
export interface NicSpec {
  /** The Port's name, for people (the domain XML and logs). */
  port: string;
  /** The Network's name. */
  network: string;
  /** Lower-case, colon-separated, unicast: 52:54:00:12:34:56. */
  mac: string;
  /** The Port's fixed IPv4 address. */
  ip: string;
  /** The network's prefix length (its CIDR's /N). */
  prefixLength: number;
  /** The network's gateway; absent when it has none. */
  gateway?: string;
  /** The network's MTU: the bridge's and the guest interface's. */
  mtu: number;
  /** The Linux bridge on this host the NIC is attached to. */
  bridge: string;
}

export interface DomainInfo {
  uid: string;
  name: string;
  flavor: FlavorSnapshot;
  image: string;
  powerState: PowerState;
  /** Size of the disk file as it is on this host (for the fake driver, the scaled-down model). */
  diskBytes: number;
  /** The NICs in the domain's definition: which bridges on this host it needs. */
  nics: NicSpec[];
}

export interface GuestInfo {
  vcpus: number;
  memoryKiB: number;
  diskBytes: number;
  marker: string;
  /** The IPv4 addresses the guest sees on its interfaces (the tiny guest's ips=); absent when it does not say. */
  ips?: string[];
}

export interface MigrationExport {
  /** Directory holding the files to send: the byte-exact backup `<uid>_resize`. */
  dir: string;
  /** File names relative to dir, e.g. ['disk.img', 'domain.json']. */
  files: string[];
}

export interface VirtDriver {
  readonly kind: 'fake' | 'libvirt';
  capacity(): Promise<ResourceAmounts>;
  /** The most bytes the disk files of a domain of `flavor` take here (what a transfer of it may carry). */
  maxDiskBytes(flavor: FlavorSnapshot): number;
  /** Idempotent: an existing domain with that uid is started if stopped and returned as is. */
  spawn(spec: DomainSpec): Promise<DomainInfo>;
  /** Idempotent. */
  powerOff(uid: string): Promise<DomainInfo>;
  /** Idempotent. */
  powerOn(uid: string): Promise<DomainInfo>;
  /** Idempotent: removes the domain and all its files, including `<uid>_resize`. */
  destroy(uid: string): Promise<void>;
  get(uid: string): Promise<DomainInfo | undefined>;
  list(): Promise<DomainInfo[]>;
  /** What the guest itself reports; undefined when it is not running (a stopped guest says nothing). */
  guestReport(uid: string): Promise<GuestInfo | undefined>;
  /** The directory holding disk and definition; a migration transfers it whole. */
  instanceDir(uid: string): string;
  /**
   * Source side of Nova's migrate_disk_and_power_off: powers the guest off and keeps a
   * byte-exact copy of its directory in `<uid>_resize` (the revert point), then returns
   * that backup as what to send. Idempotent: a second call reuses the existing backup.
   */
  migrateOut(uid: string): Promise<MigrationExport>;
  /**
   * Destination side of finish_migration. With `receivedDir` (a directory holding the
   * received files), moves it into place as instanceDir(uid) (rename; if instanceDir(uid)
   * already exists from an earlier try and receivedDir is gone, carry on with what is there).
   * Without it (same-host resize) works on the existing instanceDir(uid). Then applies
   * spec.flavor to the definition, grows the disk when the root disk grows (never shrinks,
   * existing bytes unchanged), keeps the first-boot marker, and starts the guest when
   * powerOn is true (else leaves it shut down). Idempotent.
   */
  finishMigration(spec: DomainSpec, opts: { receivedDir?: string; powerOn: boolean }): Promise<DomainInfo>;
  /**
   * Source side of confirm_resize: deletes `<uid>_resize`, and when the instance now lives
   * on another host (sameHost false) also the powered-off original directory. Idempotent.
   */
  confirmMigration(uid: string, sameHost: boolean): Promise<void>;
  /**
   * Source side of finish_revert_resize: restores `<uid>_resize` byte for byte as
   * instanceDir(uid) (replacing whatever is there), with the old flavor (spec.flavor) in the
   * definition, starting the guest when powerOn. Idempotent: when the backup is already gone
   * and instanceDir(uid) exists, just ensures flavor and power state. Throws DriverError when
   * neither exists.
   */
  revertMigration(spec: DomainSpec, opts: { powerOn: boolean }): Promise<DomainInfo>;
  /** Whether `<uid>_resize` exists. */
  hasBackup(uid: string): Promise<boolean>;
}

export class DriverError extends Error {
  constructor(
    readonly operation: string,
    readonly uid: string,
    message: string,
  ) {
    super(`${operation} ${uid}: ${message}`);
    this.name = 'DriverError';
  }
}
