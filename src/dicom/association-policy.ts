import dimse from 'dcmjs-dimse';
import type { TlsPeer } from './tls.js';

const { RejectResult, RejectSource, RejectReason } = dimse.constants;

/**
 * Who may open an association, beyond the AE checks the listener always made: a cap per remote
 * address (one misbehaving modality cannot take every slot), and the client-certificate to AE
 * title mapping of DICOM TLS. Pure: the listener passes what it knows, gets a rejection or none.
 */
export interface Rejection {
  result: number;
  source: number;
  reason: number;
  /** For the log and the audit: what was refused and which setting refused it. */
  why: string;
  /** Metric label. */
  label: string;
}

/** Over `node.max_associations_per_peer`: A-ASSOCIATE-RJ transient, "local limit exceeded". */
export function peerLimitRejection(openFromPeer: number, limit: number, address: string): Rejection | undefined {
  if (openFromPeer < limit) return undefined;
  return {
    result: RejectResult.Transient,
    source: RejectSource.ServiceProviderPresentation,
    reason: RejectReason.LocalLimitExceeded,
    why: `local limit exceeded: ${openFromPeer} associations already open from ${address} (node.max_associations_per_peer: ${limit})`,
    label: 'peer_limit',
  };
}

/**
 * `node.tls.client_aets`: a TLS caller's certificate CN names the calling AE titles it may use.
 * Plain-TCP callers are not concerned (the listener's other checks apply); with an empty map
 * nothing is checked.
 */
export function clientAetRejection(map: Record<string, string[]>, peer: TlsPeer | null, callingAet: string): Rejection | undefined {
  if (peer === null || Object.keys(map).length === 0) return undefined;
  const reject = (why: string): Rejection => ({
    result: RejectResult.Permanent,
    source: RejectSource.ServiceUser,
    reason: RejectReason.CallingAeNotRecognized,
    why: `calling AE not recognized: ${why}`,
    label: 'client_cert_aet',
  });
  if (peer.clientCN === null && peer.clientCertError) return reject(`calling AE "${callingAet}" came with a client certificate that does not verify against node.tls.ca (${peer.clientCertError})`);
  if (peer.clientCN === null) return reject(`calling AE "${callingAet}" came without a verified client certificate, and node.tls.client_aets maps certificates to AE titles`);
  const allowed = Object.hasOwn(map, peer.clientCN) ? map[peer.clientCN] : undefined;
  if (!allowed) return reject(`client certificate CN=${peer.clientCN} is not in node.tls.client_aets`);
  if (!allowed.includes(callingAet)) return reject(`calling AE "${callingAet}" is not allowed for client certificate CN=${peer.clientCN} (node.tls.client_aets allows ${allowed.join(', ') || 'none'})`);
  return undefined;
}
