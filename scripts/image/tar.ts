// A minimal, deterministic tar writer: POSIX ustar headers, with a pax extended header only for a path or link
// target that does not fit ustar's fields (or is not ASCII). Entries come out sorted by path, every parent folder
// before its children, with the modes, owners and mtime the caller gives and empty user/group names, so the same
// entries always give the same bytes.

/** One entry of a layer or archive. Paths are relative, without a leading slash ("etc/passwd"). */
export type TarEntry =
  | { type: 'dir'; path: string; mode: number; uid: number; gid: number }
  | { type: 'symlink'; path: string; target: string; uid: number; gid: number }
  | { type: 'file'; path: string; mode: number; uid: number; gid: number; data: Uint8Array };

const BLOCK = 512;

/** Compares by UTF-8 bytes (not locale): the order is the same on every machine. */
export function byPath(a: { path: string }, b: { path: string }): number {
  return Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));
}

function octal(value: number, width: number): string {
  const digits = value.toString(8);
  if (digits.length > width - 1) throw new Error(`tar: ${value} does not fit a ${width}-byte field`);
  return `${digits.padStart(width - 1, '0')}\0`;
}

function put(block: Buffer, offset: number, width: number, text: string): void {
  const bytes = Buffer.from(text);
  if (bytes.length > width) throw new Error(`tar: "${text}" does not fit a ${width}-byte field`);
  bytes.copy(block, offset);
}

interface Header {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  prefix: string;
}

function header(h: Header): Buffer {
  const b = Buffer.alloc(BLOCK);
  put(b, 0, 100, h.name);
  put(b, 100, 8, octal(h.mode, 8));
  put(b, 108, 8, octal(h.uid, 8));
  put(b, 116, 8, octal(h.gid, 8));
  put(b, 124, 12, octal(h.size, 12));
  put(b, 136, 12, octal(h.mtime, 12));
  b.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
  put(b, 156, 1, h.typeflag);
  put(b, 157, 100, h.linkname);
  put(b, 257, 8, 'ustar\x0000');
  put(b, 345, 155, h.prefix);
  let sum = 0;
  for (const byte of b) sum += byte;
  put(b, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return b;
}

function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

const ascii = /^[\x20-\x7e]*$/;

/** Splits a path into ustar's prefix (≤155 bytes) and name (≤100 bytes) at a slash, or returns undefined. */
function splitUstar(path: string): { prefix: string; name: string } | undefined {
  if (!ascii.test(path)) return undefined;
  if (path.length <= 100) return { prefix: '', name: path };
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (prefix.length <= 155 && name.length > 0 && name.length <= 100) return { prefix, name };
  }
  return undefined;
}

/** A pax record "<length> <key>=<value>\n", where the length counts the whole record, its own digits included. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLength = Buffer.byteLength(body);
  let digits = 1;
  while (String(bodyLength + digits).length !== digits) digits++;
  return `${bodyLength + digits}${body}`;
}

/** The blocks of one entry: its header (after a pax header when needed) and its data, padded. */
function* entryBlocks(entry: TarEntry, mtime: number): Generator<Uint8Array> {
  const fullPath = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  const linkname = entry.type === 'symlink' ? entry.target : '';
  const size = entry.type === 'file' ? entry.data.length : 0;
  const split = splitUstar(fullPath);
  const linkFits = ascii.test(linkname) && linkname.length <= 100;
  if (!split || !linkFits) {
    const records =
      (split ? '' : paxRecord('path', fullPath)) + (linkFits ? '' : paxRecord('linkpath', linkname));
    const data = Buffer.from(records);
    yield header({
      name: 'PaxHeader',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: data.length,
      mtime,
      typeflag: 'x',
      linkname: '',
      prefix: '',
    });
    yield data;
    yield padding(data.length);
  }
  const short = split ?? { prefix: '', name: Buffer.from(fullPath).subarray(0, 99).toString('latin1') };
  yield header({
    name: short.name,
    mode: entry.type === 'symlink' ? 0o777 : entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size,
    mtime,
    typeflag: entry.type === 'file' ? '0' : entry.type === 'dir' ? '5' : '2',
    linkname: linkFits ? linkname : '',
    prefix: short.prefix,
  });
  if (entry.type === 'file') {
    yield entry.data;
    yield padding(size);
  }
}

/**
 * The whole archive as a sequence of chunks (to write to a file or hash as it goes). Entries are sorted here;
 * two entries with one path are an error, since which one wins on extraction would depend on the tool.
 */
export function* tarChunks(entries: readonly TarEntry[], mtime = 0): Generator<Uint8Array> {
  const sorted = [...entries].sort(byPath);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.path === sorted[i - 1]!.path) throw new Error(`tar: two entries for ${sorted[i]!.path}`);
  }
  for (const entry of sorted) {
    if (entry.path.startsWith('/') || entry.path.endsWith('/') || entry.path === '') {
      throw new Error(`tar: entry path "${entry.path}" must be relative, without a trailing slash`);
    }
    yield* entryBlocks(entry, mtime);
  }
  yield Buffer.alloc(2 * BLOCK);
}

/** The whole archive in memory. */
export function tar(entries: readonly TarEntry[], mtime = 0): Buffer {
  return Buffer.concat([...tarChunks(entries, mtime)]);
}
