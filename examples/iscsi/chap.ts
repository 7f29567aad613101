/**
 * One-way CHAP as iSCSI uses it (RFC 7143 section 12.1.3, RFC 1994): the target challenges, the
 * initiator proves it knows the secret. Only CHAP_A=5 (MD5) is offered.
 *
 *   I->T  CHAP_A=<A1,A2,...>
 *   T->I  CHAP_A=5  CHAP_I=<identifier>  CHAP_C=<challenge>
 *   I->T  CHAP_N=<name>  CHAP_R=<MD5(identifier || secret || challenge)>
 *
 * Mutual CHAP (the initiator sending CHAP_I/CHAP_C) is refused: authentication failure.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseBinary, parseNumber, hexValue, KeyPairs } from './keys';

/** RFC 1994 / RFC 7143 12.1.3: algorithm 5 is MD5. */
export const CHAP_MD5 = 5;
/** Challenge length in bytes (RFC 7143 12.1.3 asks for challenges at least as long as the hash). */
export const CHAP_CHALLENGE_LEN = 32;

export function chapResponse(id: number, secret: string, challenge: Uint8Array): Uint8Array {
  const h = createHash('md5');
  h.update(Uint8Array.of(id & 0xff));
  h.update(Buffer.from(secret, 'utf8'));
  h.update(challenge);
  return new Uint8Array(h.digest());
}

export type ChapStep =
  | { ok: true; reply: KeyPairs; done: boolean }
  | { ok: false; reason: string; reply?: KeyPairs };

export class ChapAuthenticator {
  private id = 0;
  private challenge: Uint8Array | null = null;

  constructor(private readonly creds: { user: string; secret: string },
              private readonly random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))) {}

  /** True once CHAP_A was answered and the response is awaited. */
  get challenged(): boolean { return this.challenge !== null; }

  /** The initiator's CHAP_A list: answer with our algorithm, identifier and challenge. */
  offer(list: string): ChapStep {
    const algs = list.split(',').map((a) => parseNumber(a.trim()));
    if (!algs.includes(CHAP_MD5)) {
      // RFC 7143 6.2.1: no acceptable value in the list is answered "Reject"; authentication
      // cannot proceed.
      return { ok: false, reason: 'chap-no-md5', reply: [['CHAP_A', 'Reject']] };
    }
    this.id = this.random(1)[0];
    this.challenge = this.random(CHAP_CHALLENGE_LEN);
    return {
      ok: true, done: false,
      reply: [['CHAP_A', String(CHAP_MD5)], ['CHAP_I', String(this.id)], ['CHAP_C', hexValue(this.challenge)]],
    };
  }

  /** The initiator's CHAP_N / CHAP_R (and possibly CHAP_I / CHAP_C for mutual CHAP). */
  verify(keys: ReadonlyMap<string, string>): ChapStep {
    if (!this.challenge) return { ok: false, reason: 'chap-no-challenge' };
    if (keys.has('CHAP_I') || keys.has('CHAP_C')) return { ok: false, reason: 'chap-mutual-unsupported' };
    const n = keys.get('CHAP_N');
    const r = keys.get('CHAP_R');
    if (n === undefined || r === undefined) return { ok: false, reason: 'chap-missing-response' };
    const got = parseBinary(r);
    if (!got) return { ok: false, reason: 'chap-bad-response-encoding' };
    const want = chapResponse(this.id, this.creds.secret, this.challenge);
    // A challenge is used once (RFC 1994 section 2.3 / RFC 7143 12.1.3).
    this.challenge = null;
    if (n !== this.creds.user) return { ok: false, reason: 'chap-bad-name' };
    if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, reason: 'chap-bad-response' };
    return { ok: true, reply: [], done: true };
  }
}
