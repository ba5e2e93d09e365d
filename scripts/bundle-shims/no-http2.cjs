// Stands in for node:http2 inside the bundles (scripts/build.ts). undici's HTTP/2 client requires node:http2 when
// its file loads, whether or not HTTP/2 is ever used, and node:http2 brings node:tls and node:crypto with it:
// ~6 MiB of RSS in every dispatcher. The dispatcher never enables HTTP/2 (undici's allowH2 stays off), so undici
// gets what it gets when Node has no http2 at all, which its own fallback already handles: an empty constants.
module.exports = { constants: {} };
