import fs from 'node:fs';
import crypto from 'node:crypto';
import tls from 'node:tls';
import { ConfigError } from '../config/load.js';
import type { NodeConfig } from '../config/schema.js';

/**
 * DICOM TLS for the listener (PS3.15 Annex B, the secure transport connection profile): the
 * options of the tls.Server built from `node.tls`, each file checked so that a bad key,
 * certificate or CA stops the start with a message naming the file (exit 2), not with an OpenSSL
 * error at the first connection.
 */
export type ListenerTls = NonNullable<NodeConfig['tls']>;

/** What the association knows about its TLS peer (the audit's `tls` field). */
export interface TlsPeer {
  protocol: string | null;
  cipher: string | null;
  /** Subject CN of the client certificate, only when it verified against node.tls.ca. */
  clientCN: string | null;
  /** Why a client certificate that was presented did not verify (when it was not required). */
  clientCertError?: string;
}

function readFile(key: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new ConfigError(`node.tls.${key}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function parseCerts(key: string, file: string, pem: Buffer): crypto.X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new ConfigError(`node.tls.${key}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((b, i) => {
    try {
      return new crypto.X509Certificate(b);
    } catch (e) {
      throw new ConfigError(`node.tls.${key}: certificate ${i + 1} in ${file} cannot be read: ${opensslMessage(e as Error)}`);
    }
  });
}

/**
 * The tls.Server options for `node.tls`, checked: key and certificate readable and matching, CA
 * bundle readable, cipher list understood by OpenSSL. `warnings` are for the log (an expired
 * certificate: the node still starts, the plain listener may be all that the site uses).
 */
export function tlsServerOptions(t: ListenerTls, now = new Date()): { options: tls.TlsOptions; warnings: string[] } {
  const warnings: string[] = [];
  const keyPem = readFile('key', t.key);
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(keyPem);
  } catch (e) {
    throw new ConfigError(`node.tls.key: ${t.key} is not a readable unencrypted PEM private key: ${opensslMessage(e as Error)}`);
  }
  const certPem = readFile('cert', t.cert);
  const [leaf] = parseCerts('cert', t.cert, certPem);
  if (!leaf.checkPrivateKey(key)) throw new ConfigError(`node.tls.key: ${t.key} is not the private key of the certificate in node.tls.cert (${t.cert})`);
  if (new Date(leaf.validTo) < now) warnings.push(`node.tls.cert: the certificate in ${t.cert} expired on ${leaf.validTo}: TLS peers will refuse it; renew it`);
  const caPem = t.ca ? readFile('ca', t.ca) : undefined;
  if (caPem && t.ca) parseCerts('ca', t.ca, caPem);
  // A client certificate is asked for when it is required, or when it selects the AE titles allowed.
  const mapping = Object.keys(t.client_aets).length > 0;
  const options: tls.TlsOptions = {
    key: keyPem,
    cert: certPem,
    ca: caPem,
    requestCert: t.require_client_cert || mapping,
    rejectUnauthorized: t.require_client_cert,
    minVersion: t.min_version,
    ...(t.ciphers ? { ciphers: t.ciphers } : {}),
    honorCipherOrder: true,
  };
  try {
    tls.createSecureContext(options);
  } catch (e) {
    const what = t.ciphers && /cipher/i.test((e as Error).message) ? `node.tls.ciphers: "${t.ciphers}" is not a usable OpenSSL cipher list` : 'node.tls: the key, certificate and CA cannot be used together';
    throw new ConfigError(`${what}: ${opensslMessage(e as Error)}`);
  }
  return { options, warnings };
}

/** Protocol, cipher and verified client CN of an established TLS connection. */
export function tlsPeer(socket: tls.TLSSocket): TlsPeer {
  let clientCN: string | null = null;
  if (socket.authorized) {
    const cn = socket.getPeerCertificate()?.subject?.CN as string | string[] | undefined;
    clientCN = (Array.isArray(cn) ? cn[0] : cn) ?? null;
  }
  const peer: TlsPeer = { protocol: socket.getProtocol(), cipher: socket.getCipher()?.name ?? null, clientCN };
  // Only a certificate that was presented and failed has an error worth reporting.
  if (!socket.authorized && socket.authorizationError && Object.keys(socket.getPeerCertificate() ?? {}).length > 0) {
    peer.clientCertError = String(socket.authorizationError);
  }
  return peer;
}

/**
 * Why a TLS handshake failed, for the log and the audit: "tls handshake: peer did not return a
 * certificate". A client certificate that does not verify makes Node drop the connection with a
 * bare "socket hang up"; its verification error, kept on the socket, is the real reason.
 */
export function handshakeFailure(err: Error, socket: tls.TLSSocket): string {
  const verify = socket.authorizationError;
  if (verify) return `tls handshake: client certificate refused (${String(verify)}): it must be issued by the CA in node.tls.ca and be valid`;
  return `tls handshake: ${opensslMessage(err)}`;
}

/**
 * Makes each TCP socket of a TLS server read its peer address on arrival: Node caches it then, so
 * `tlsRemote` can still name the peer after a failed handshake has destroyed the socket.
 */
export function keepPeerAddresses(server: tls.Server): void {
  server.on('connection', (raw: { remoteAddress?: string; remotePort?: number }) => void [raw.remoteAddress, raw.remotePort]);
}

/** "address:port" of a TLS socket, also once Node has destroyed it after a failed handshake. */
export function tlsRemote(socket: tls.TLSSocket): string {
  // The TLS socket forgets its peer when destroyed; the TCP socket underneath (_parent) keeps it.
  const raw = (socket as unknown as { _parent?: { remoteAddress?: string; remotePort?: number } })._parent;
  const address = socket.remoteAddress ?? raw?.remoteAddress;
  const port = socket.remotePort ?? raw?.remotePort;
  return address ? `${address}:${port}` : 'unknown';
}

/** OpenSSL's "error:0A0000C7:SSL routines::peer did not return a certificate" without the codes. */
function opensslMessage(err: Error): string {
  // OpenSSL 3: "<thread>:error:<code>:<library>:<function>:<reason>:<file>:<line>:"; older: "error:<code>:<library>::<reason>".
  const m = /error:[0-9A-F]+:[^:]*:[^:]*:([^:]+)/i.exec(err.message);
  return m ? m[1].trim() : err.message;
}
