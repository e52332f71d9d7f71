// Test PKI made with the real openssl CLI: a CA, a server certificate for 127.0.0.1/localhost,
// client certificates, and a second CA whose certificates the node must not trust.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from './ports.js';

export interface KeyPair {
  key: string;
  cert: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** A self-signed CA in `dir/<name>.key|.pem`. */
export async function makeCa(dir: string, name: string): Promise<KeyPair> {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { key, cert };
}

/** A leaf certificate with subject CN=`cn`, signed by `ca`; a server one carries SANs for 127.0.0.1 and localhost. */
export async function makeCert(dir: string, name: string, cn: string, ca: KeyPair, kind: 'server' | 'client'): Promise<KeyPair> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, kind === 'server'
    ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n'
    : 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], dir);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext], dir);
  return { key, cert };
}

export interface TestPki {
  ca: KeyPair;
  server: KeyPair;
  /** CN=CTSIM, from `ca`. */
  ctsim: KeyPair;
  /** CN=CTSIM too, but from another CA. */
  rogue: KeyPair;
}

export async function makeTestPki(dir: string): Promise<TestPki> {
  const ca = await makeCa(dir, 'ca');
  const other = await makeCa(dir, 'other-ca');
  return {
    ca,
    server: await makeCert(dir, 'server', 'localhost', ca, 'server'),
    ctsim: await makeCert(dir, 'ctsim', 'CTSIM', ca, 'client'),
    rogue: await makeCert(dir, 'rogue', 'CTSIM', other, 'client'),
  };
}
