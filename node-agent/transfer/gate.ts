// Which transfer requests the destination's server admits (TransferServer's admit): a request
// from the peer host P (its verified certificate's CN) for Migration M goes on only when
//   1. M is in this agent's Migration cache with the uid asked for, is `migrating`, has
//      destHost = this host and sourceHost = P (no API read: a stranger or a replay of a
//      finished migration stops here);
//   2. a bearer token is presented, and M's credential (release namespace, read once and
//      cached) names M, source P, destination this host, is unexpired, and its token equals the
//      one presented (compared in constant time).
// Its limits: the larger of the old and new flavor's disk as this host's driver makes it, plus
// room for the definition files, in at most MAX_FILES files.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ObjectCache } from '../../common/kube/api.js';
import type { VirtDriver } from '../driver/driver.js';
import type { CredentialCache } from './credentials.js';
import { Refusal, type Admission, type AdmissionRequest } from './server.js';

/** Room for everything beside the disk: definition, markers. */
export const DEFINITION_BYTES = 4 * 1024 * 1024;
export const MAX_FILES = 16;
const REREAD_MS = 1_000;

export class TransferGate {
  constructor(
    private readonly host: string,
    private readonly migrations: ObjectCache<'Migration'>,
    private readonly credentials: CredentialCache,
    private readonly driver: Pick<VirtDriver, 'maxDiskBytes'>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async admit({ ref, peer, token }: AdmissionRequest): Promise<Admission> {
    const mig = this.migrations.get(ref.name, ref.namespace);
    const s = mig?.status;
    // This host's view may lag the source's move to migrating (the watch event is on its way):
    // the same migration, still pre-migrating from that source to here, is asked to retry.
    if (
      mig?.metadata.uid === ref.uid &&
      s?.status === 'pre-migrating' &&
      s.destHost === this.host &&
      s.sourceHost === peer
    ) {
      throw new Refusal(
        503,
        'Unavailable',
        `migration ${ref.namespace}/${ref.name} is not yet migrating as ${this.host} sees it; retry`,
      );
    }
    if (
      !mig ||
      mig.metadata.uid !== ref.uid ||
      s?.status !== 'migrating' ||
      s.destHost !== this.host ||
      s.sourceHost !== peer
    ) {
      throw new Refusal(
        403,
        'Forbidden',
        `no migration ${ref.namespace}/${ref.name} (${ref.uid}) is migrating from ${peer || 'an unnamed peer'} to ${this.host}`,
      );
    }
    if (!token) throw new Refusal(401, 'Unauthorized', 'no transfer token presented');
    let cred = await this.credentials.get(ref.uid);
    // One naming other hosts may have been replaced since it was read (the operator replaces it
    // when it chooses another destination): read it again, at most once a second. A wrong
    // token costs no further read.
    if (!cred || cred.source !== peer || cred.destination !== this.host)
      cred = await this.credentials.get(ref.uid, REREAD_MS);
    const problem = !cred
      ? 'no transfer credential exists for this migration'
      : cred.migration.uid !== ref.uid || cred.migration.namespace !== ref.namespace || cred.migration.name !== ref.name
        ? 'the credential is for another migration'
        : cred.source !== peer || cred.destination !== this.host
          ? 'the credential is for other hosts'
          : cred.expiresAt.getTime() <= this.now().getTime()
            ? 'the credential has expired'
            : !tokensEqual(token, cred.token)
              ? 'wrong transfer token'
              : undefined;
    if (problem || !cred) throw new Refusal(401, 'Unauthorized', problem ?? 'no transfer credential');
    const flavors = [s.oldFlavor, s.newFlavor].filter((f) => f !== undefined);
    const disk = Math.max(0, ...flavors.map((f) => this.driver.maxDiskBytes(f)));
    return {
      credential: createHash('sha256').update(cred.token).digest('hex').slice(0, 16),
      maxBytes: disk + DEFINITION_BYTES,
      maxFiles: MAX_FILES,
    };
  }
}

function tokensEqual(presented: string, expected: string): boolean {
  // Hashing first gives equal-length inputs, so neither the length nor the content of the
  // expected token leaks through timing.
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
