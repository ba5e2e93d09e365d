// Types of the untyped compression libraries, only what codecs/ uses.

declare module 'lz4js' {
  const lz4: {
    compressBlock(
      src: Uint8Array,
      dst: Uint8Array,
      sIndex: number,
      sLength: number,
      hashTable: Uint32Array,
    ): number;
  };
  export default lz4;
}

declare module 'snappyjs' {
  const snappy: {
    compress(src: Uint8Array): Uint8Array;
    uncompress(src: Uint8Array, maxLength?: number): Uint8Array;
  };
  export default snappy;
}
