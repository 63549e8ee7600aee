import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';

export interface FileDigest {
  size: number;
  sha256: string;
}

/** SHA-256 and length of the bytes actually read, which is what a manifest must promise. */
export async function hashFile(file: string, signal?: AbortSignal): Promise<FileDigest> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    createReadStream(file),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.length;
      }
    },
    { signal },
  );
  return { size, sha256: hash.digest('hex') };
}
