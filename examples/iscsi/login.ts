/**
 * The target side of the iSCSI login phase (RFC 7143 sections 6 and 13), sans-IO: one Login
 * Request in (header fields + text), one Login Response out (stage bits, status, text).
 *
 * Every key the initiator offers is answered explicitly (RFC 7143 6.2: a responder answers each
 * negotiated key; libiscsi turns header digests on when HeaderDigest is left unanswered), unknown
 * keys get "NotUnderstood" (6.2.1). Declarative keys (InitiatorName, TargetName, SessionType, ...)
 * need no answer. Stages: SecurityNegotiation (0), LoginOperationalNegotiation (1),
 * FullFeaturePhase (3); transitions per 6.3 with the T bit and CSG/NSG.
 */
import { ChapAuthenticator } from './chap';
import { KeyPairs, parseText, parseNumber, parseBool } from './keys';

export const STAGE_SECURITY = 0;
export const STAGE_OPERATIONAL = 1;
export const STAGE_FULL_FEATURE = 3;

/** RFC 7143 11.13.5 Status-Class/Status-Detail, as (class << 8) | detail. */
export const enum LoginStatus {
  Success = 0x0000,
  InitiatorError = 0x0200, AuthFailure = 0x0201, AuthorizationFailure = 0x0202, NotFound = 0x0203,
  TargetRemoved = 0x0204, UnsupportedVersion = 0x0205, TooManyConnections = 0x0206,
  MissingParameter = 0x0207, CantIncludeInSession = 0x0208, SessionTypeNotSupported = 0x0209,
  SessionDoesNotExist = 0x020a, InvalidDuringLogin = 0x020b,
  TargetError = 0x0300, ServiceUnavailable = 0x0301, OutOfResources = 0x0302,
}

/** Our side of the operational keys (RFC 7143 13). */
export interface LoginLimits {
  /** What we can receive in one data segment (declared to the initiator, 13.12). */
  maxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  maxOutstandingR2T: number;
  /** Our InitialR2T wish: Yes forces R2T for all write data (13.10, OR function). */
  initialR2T: boolean;
  /** Our ImmediateData wish (13.11, AND function). */
  immediateData: boolean;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  targetAlias?: string;
  /** RFC 7143 13.9: sent in the first Login Response of a Normal session. */
  portalGroupTag: number;
}

export interface LoginTargetInfo { chap?: { user: string; secret: string } }

/** The negotiated session (defaults from RFC 7143 13 for keys the initiator did not offer). */
export interface SessionParams {
  sessionType: 'Normal' | 'Discovery';
  initiatorName: string;
  initiatorAlias?: string;
  targetName?: string;
  headerDigest: boolean;
  dataDigest: boolean;
  /** The initiator's MaxRecvDataSegmentLength: our Data-In / Text Response segment limit. */
  initiatorMaxRecvDataSegmentLength: number;
  /** Ours, as declared. */
  targetMaxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxOutstandingR2T: number;
  dataPduInOrder: boolean;
  dataSequenceInOrder: boolean;
  errorRecoveryLevel: number;
  maxConnections: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
}

export interface LoginRequest {
  transit: boolean;
  cont: boolean;
  csg: number;
  nsg: number;
  versionMax: number;
  versionMin: number;
  data: Uint8Array;
}

export interface LoginReply {
  transit: boolean;
  csg: number;
  nsg: number;
  status: LoginStatus;
  keys: KeyPairs;
  /** The response completes the login: full feature phase starts after it. */
  complete: boolean;
  /** Counter reason when status is not Success. */
  reason?: string;
}

type Answer = (v: string) => string;

/** RFC 7143 13: numeric ranges. */
const RANGE: Record<string, [number, number]> = {
  MaxRecvDataSegmentLength: [512, 16777215],
  MaxBurstLength: [512, 16777215],
  FirstBurstLength: [512, 16777215],
  MaxOutstandingR2T: [1, 65535],
  DefaultTime2Wait: [0, 3600],
  DefaultTime2Retain: [0, 3600],
  MaxConnections: [1, 65535],
  ErrorRecoveryLevel: [0, 2],
};

/** Keys a target sends or that exist only in full feature phase: not for an initiator's login. */
const NOT_FROM_INITIATOR = new Set(['TargetAlias', 'TargetAddress', 'TargetPortalGroupTag', 'SendTargets']);
/** Obsolete marker keys (RFC 7143 13.25 lists them as obsolete; answered "No" / "Irrelevant"). */
const MARKER_BOOL = new Set(['IFMarker', 'OFMarker']);
const MARKER_INT = new Set(['IFMarkInt', 'OFMarkInt']);
const SECURITY_KEYS = /^(AuthMethod|CHAP_[A-Z])$/;

export class LoginNegotiator {
  stage = STAGE_SECURITY;
  /** True once the first Login Request was accepted (declaratives checked). */
  started = false;
  readonly params: SessionParams;
  private auth: 'none' | 'chap' | 'pending' = 'pending';
  private chap: ChapAuthenticator | null = null;
  private chapCreds: { user: string; secret: string } | undefined;
  /** Keys negotiated so far (RFC 7143 6.2: a key is negotiated at most once per login). */
  private negotiated = new Set<string>();
  private declaredOurs = false;
  /**
   * Keys the target offered itself (RFC 7143 6.2: either side may originate a key) because the
   * initiator left them at their RFC 7143 13 default while our limits give another result: the
   * initiator's next Login Request carries its answer.
   */
  private readonly ourOffers = new Map<string, string>();
  private offersMade = false;
  private pendingText: Uint8Array[] = [];
  private pendingLen = 0;

  constructor(private readonly limits: LoginLimits,
              private readonly findTarget: (iqn: string) => LoginTargetInfo | undefined,
              private readonly random?: (n: number) => Uint8Array) {
    this.params = {
      sessionType: 'Normal', initiatorName: '',
      headerDigest: false, dataDigest: false,
      initiatorMaxRecvDataSegmentLength: 8192, // RFC 7143 13.12 default
      targetMaxRecvDataSegmentLength: limits.maxRecvDataSegmentLength,
      maxBurstLength: Math.min(262144, limits.maxBurstLength),
      firstBurstLength: Math.min(65536, limits.firstBurstLength, limits.maxBurstLength),
      initialR2T: true, immediateData: limits.immediateData, maxOutstandingR2T: 1,
      dataPduInOrder: true, dataSequenceInOrder: true, errorRecoveryLevel: 0, maxConnections: 1,
      defaultTime2Wait: Math.max(2, limits.defaultTime2Wait), defaultTime2Retain: Math.min(20, limits.defaultTime2Retain),
    };
  }

  step(req: LoginRequest): LoginReply {
    const fail = (status: LoginStatus, reason: string, keys: KeyPairs = []): LoginReply =>
      ({ transit: false, csg: req.csg, nsg: 0, status, keys, complete: false, reason });

    if (req.versionMin > 0) return fail(LoginStatus.UnsupportedVersion, 'login-version'); // 11.12.4: only version 0
    // RFC 7143 6.3: the CSG must be the stage the target is in; FullFeaturePhase is not a CSG.
    if (req.csg !== this.stage || req.csg === STAGE_FULL_FEATURE || req.csg === 2) {
      if (!(this.stage === STAGE_SECURITY && !this.started && req.csg === STAGE_OPERATIONAL)) {
        return fail(LoginStatus.InitiatorError, 'login-wrong-stage');
      }
    }
    // RFC 7143 11.12.2: with T set, NSG must be a later stage (1 or 3; 2 is reserved).
    if (req.transit && (req.nsg === 2 || req.nsg <= req.csg)) return fail(LoginStatus.InitiatorError, 'login-bad-nsg');
    if (req.cont && req.transit) return fail(LoginStatus.InitiatorError, 'login-c-and-t'); // 11.12.2

    // RFC 7143 11.12.2: C set means the text continues in the next Login Request; the target
    // answers each such PDU with an empty Login Response.
    if (req.cont || this.pendingLen) {
      this.pendingLen += req.data.length;
      if (this.pendingLen > 65536) return fail(LoginStatus.OutOfResources, 'login-text-too-long');
      this.pendingText.push(req.data.slice());
      if (req.cont) return { transit: false, csg: req.csg, nsg: 0, status: LoginStatus.Success, keys: [], complete: false };
    }
    let data = req.data;
    if (this.pendingText.length) {
      data = Buffer.concat(this.pendingText);
      this.pendingText = [];
      this.pendingLen = 0;
    }
    const parsed = parseText(data);
    if (parsed.error) return fail(LoginStatus.InitiatorError, 'login-bad-text');
    const keys = new Map<string, string>();
    for (const [k, v] of parsed.pairs) {
      if (keys.has(k)) return fail(LoginStatus.InitiatorError, 'login-duplicate-key');
      keys.set(k, v);
    }

    const reply: KeyPairs = [];
    if (!this.started) {
      const first = this.first(keys, reply);
      if (first) return fail(first[0], first[1]);
      if (req.csg === STAGE_OPERATIONAL) this.stage = STAGE_OPERATIONAL;
    } else {
      // The same declaration again is tolerated (an initiator may repeat the names in a later
      // Login Request, as tgt allows); a different one is an error (6.3). iSCSI names compare
      // without regard to case (RFC 7143 4.2.7.1 / RFC 3722: they are normalised to lower case),
      // so a target name typed in mixed case matches the lower-case one kept from the first request.
      for (const k of ['InitiatorName', 'TargetName', 'SessionType']) {
        const v = keys.get(k);
        const had = k === 'InitiatorName' ? this.params.initiatorName : k === 'TargetName' ? this.params.targetName : this.params.sessionType;
        const same = v === undefined || (k === 'SessionType' ? v === had : v.toLowerCase() === had?.toLowerCase());
        if (!same) return fail(LoginStatus.InitiatorError, 'login-redeclared');
      }
    }

    // Security stage (RFC 7143 6.3.1, 12).
    if (req.csg === STAGE_SECURITY) {
      const r = this.security(keys, reply);
      if (r) return fail(r[0], r[1], r[2]);
    } else if (this.chapCreds && this.auth !== 'chap') {
      // RFC 7143 6.3: a target that requires authentication does not let an initiator start in
      // (or move to) operational negotiation unauthenticated.
      return fail(LoginStatus.AuthFailure, 'login-auth-required');
    }

    // Operational keys (allowed in either login stage) and unknown keys.
    const r = this.operational(keys, reply, req.csg);
    if (r) return fail(r[0], r[1]);

    // Our own offers, in the first response of operational negotiation (after every key of the
    // request was taken, so only keys the initiator left at their defaults are offered).
    const offers = req.csg === STAGE_OPERATIONAL && !this.offersMade ? this.makeOffers() : [];
    if (req.csg === STAGE_OPERATIONAL) this.offersMade = true;
    reply.push(...offers);

    // Transition.
    let transit = false;
    let nsg = 0;
    if (req.transit) {
      const authOk = req.csg !== STAGE_SECURITY || this.auth === 'none' || this.auth === 'chap';
      if (!authOk) {
        // Leaving security negotiation without having started the required authentication.
        if (!this.chap) return fail(LoginStatus.AuthFailure, 'login-auth-required');
      } else if (offers.length) {
        // RFC 7143 6.3: "Targets MUST NOT submit parameters that require an additional initiator
        // Login Request in a Login Response with the T bit set to 1": stay until they are answered.
      } else if (req.csg === STAGE_SECURITY && req.nsg === STAGE_FULL_FEATURE && this.wouldOffer()) {
        // Skipping operational negotiation would leave both sides with different values: the
        // target selects LoginOperationalNegotiation instead (6.3: NSG may not exceed the
        // initiator's, a lower one is the target's choice) and offers its keys there.
        transit = true; nsg = STAGE_OPERATIONAL;
      } else {
        transit = true; nsg = req.nsg;
      }
    }
    // Declare ours once operational negotiation is under way or about to end (13.12 is declarative).
    if (!this.declaredOurs && (req.csg === STAGE_OPERATIONAL || transit)) {
      this.declaredOurs = true;
      if (!keys.has('MaxRecvDataSegmentLength')) reply.push(['MaxRecvDataSegmentLength', String(this.limits.maxRecvDataSegmentLength)]);
    }
    if (transit) this.stage = nsg;
    return { transit, csg: req.csg, nsg, status: LoginStatus.Success, keys: reply, complete: transit && nsg === STAGE_FULL_FEATURE };
  }

  /** The first Login Request: declaratives (RFC 7143 13.4-13.6, 13.21) and target lookup. */
  private first(keys: Map<string, string>, reply: KeyPairs): [LoginStatus, string] | null {
    const ini = keys.get('InitiatorName');
    if (!ini) return [LoginStatus.MissingParameter, 'login-no-initiator-name']; // 13.6: MUST in the first request
    const st = keys.get('SessionType') ?? 'Normal'; // 13.21 default Normal
    if (st !== 'Normal' && st !== 'Discovery') return [LoginStatus.SessionTypeNotSupported, 'login-bad-session-type'];
    this.params.initiatorName = ini;
    this.params.initiatorAlias = keys.get('InitiatorAlias');
    this.params.sessionType = st;
    const tn = keys.get('TargetName');
    if (st === 'Normal') {
      if (!tn) return [LoginStatus.MissingParameter, 'login-no-target-name']; // 13.4: MUST for Normal
      const t = this.findTarget(tn.toLowerCase());
      if (!t) return [LoginStatus.NotFound, 'login-target-not-found'];
      this.params.targetName = tn.toLowerCase();
      this.chapCreds = t.chap;
      reply.push(['TargetPortalGroupTag', String(this.limits.portalGroupTag)]);
      if (this.limits.targetAlias) reply.push(['TargetAlias', this.limits.targetAlias]);
    } else if (tn) {
      this.params.targetName = tn.toLowerCase();
      // RFC 7143 6.3: the TargetPortalGroupTag goes in the first Login Response "for all session
      // types when TargetName is given".
      reply.push(['TargetPortalGroupTag', String(this.limits.portalGroupTag)]);
    }
    if (!this.chapCreds) this.auth = 'none';
    this.started = true;
    return null;
  }

  private security(keys: Map<string, string>, reply: KeyPairs): [LoginStatus, string, KeyPairs?] | null {
    const am = keys.get('AuthMethod');
    if (am !== undefined) {
      if (this.negotiated.has('AuthMethod')) return [LoginStatus.InitiatorError, 'login-renegotiated'];
      this.negotiated.add('AuthMethod');
      const offered = am.split(',');
      if (this.chapCreds) {
        if (!offered.includes('CHAP')) return [LoginStatus.AuthFailure, 'login-auth-chap-not-offered', [['AuthMethod', 'Reject']]];
        reply.push(['AuthMethod', 'CHAP']);
        this.chap = new ChapAuthenticator(this.chapCreds, this.random);
      } else {
        if (!offered.includes('None')) return [LoginStatus.AuthFailure, 'login-auth-none-not-offered', [['AuthMethod', 'Reject']]];
        reply.push(['AuthMethod', 'None']);
        this.auth = 'none';
      }
    }
    const ca = keys.get('CHAP_A');
    if (ca !== undefined) {
      if (!this.chap || this.chap.challenged || this.auth === 'chap') return [LoginStatus.InitiatorError, 'login-chap-out-of-order'];
      const s = this.chap.offer(ca);
      if (!s.ok) return [LoginStatus.AuthFailure, s.reason, s.reply];
      reply.push(...s.reply);
    }
    if (keys.has('CHAP_N') || keys.has('CHAP_R')) {
      if (!this.chap || !this.chap.challenged) return [LoginStatus.InitiatorError, 'login-chap-out-of-order'];
      const s = this.chap.verify(keys);
      if (!s.ok) return [LoginStatus.AuthFailure, s.reason];
      this.auth = 'chap';
    }
    return null;
  }

  private operational(keys: Map<string, string>, reply: KeyPairs, csg: number): [LoginStatus, string] | null {
    const p = this.params;
    const L = this.limits;
    const num = (k: string, v: string): number | undefined => {
      const n = parseNumber(v);
      const [lo, hi] = RANGE[k];
      return Number.isNaN(n) || n < lo || n > hi ? undefined : n;
    };
    // FirstBurstLength is bounded by the MaxBurstLength result (13.14), whatever the key order.
    const mblOffer = keys.has('MaxBurstLength') ? num('MaxBurstLength', keys.get('MaxBurstLength')!) : undefined;
    // Without an offer in this PDU, the value negotiated earlier in the login (or the default) holds.
    const mbl = Math.min(mblOffer ?? p.maxBurstLength, L.maxBurstLength);

    const answers: Record<string, Answer> = {
      HeaderDigest: (v) => this.digest(v, (on) => { p.headerDigest = on; }),
      DataDigest: (v) => this.digest(v, (on) => { p.dataDigest = on; }),
      // 13.2: MaxConnections, minimum; one connection per session here.
      MaxConnections: (v) => { const n = num('MaxConnections', v); if (n === undefined) return 'Reject'; p.maxConnections = 1; return '1'; },
      // 13.10: InitialR2T, OR function.
      InitialR2T: (v) => { const b = parseBool(v); if (b === undefined) return 'Reject'; p.initialR2T = b || L.initialR2T; return p.initialR2T ? 'Yes' : 'No'; },
      // 13.11: ImmediateData, AND function.
      ImmediateData: (v) => { const b = parseBool(v); if (b === undefined) return 'Reject'; p.immediateData = b && L.immediateData; return p.immediateData ? 'Yes' : 'No'; },
      // 13.12: declarative, per direction: the initiator's value limits what we send; ours is declared back.
      MaxRecvDataSegmentLength: (v) => {
        const n = num('MaxRecvDataSegmentLength', v);
        if (n === undefined) return 'Reject';
        p.initiatorMaxRecvDataSegmentLength = n;
        return String(L.maxRecvDataSegmentLength);
      },
      // 13.13 / 13.14: minimum; FirstBurstLength never above MaxBurstLength.
      MaxBurstLength: (v) => { if (num('MaxBurstLength', v) === undefined) return 'Reject'; p.maxBurstLength = mbl; p.firstBurstLength = Math.min(p.firstBurstLength, mbl); return String(mbl); },
      FirstBurstLength: (v) => {
        const n = num('FirstBurstLength', v);
        if (n === undefined) return 'Reject';
        p.firstBurstLength = Math.min(n, L.firstBurstLength, mbl);
        return String(p.firstBurstLength);
      },
      // 13.15 maximum / 13.16 minimum.
      DefaultTime2Wait: (v) => { const n = num('DefaultTime2Wait', v); if (n === undefined) return 'Reject'; p.defaultTime2Wait = Math.max(n, L.defaultTime2Wait); return String(p.defaultTime2Wait); },
      DefaultTime2Retain: (v) => { const n = num('DefaultTime2Retain', v); if (n === undefined) return 'Reject'; p.defaultTime2Retain = Math.min(n, L.defaultTime2Retain); return String(p.defaultTime2Retain); },
      // 13.17: minimum.
      MaxOutstandingR2T: (v) => { const n = num('MaxOutstandingR2T', v); if (n === undefined) return 'Reject'; p.maxOutstandingR2T = Math.min(n, L.maxOutstandingR2T); return String(p.maxOutstandingR2T); },
      // 13.18 / 13.19: OR function; this target wants both in order.
      DataPDUInOrder: (v) => { if (parseBool(v) === undefined) return 'Reject'; p.dataPduInOrder = true; return 'Yes'; },
      DataSequenceInOrder: (v) => { if (parseBool(v) === undefined) return 'Reject'; p.dataSequenceInOrder = true; return 'Yes'; },
      // 13.20: minimum; only session recovery (level 0) here.
      ErrorRecoveryLevel: (v) => { if (num('ErrorRecoveryLevel', v) === undefined) return 'Reject'; p.errorRecoveryLevel = 0; return '0'; },
      // 13.23: TaskReporting; only RFC 3720 semantics.
      TaskReporting: () => 'RFC3720',
      // RFC 7144 section 2.1: iSCSIProtocolLevel, minimum; RFC 7143 is level 1.
      iSCSIProtocolLevel: (v) => { const n = parseNumber(v); return Number.isNaN(n) ? 'Reject' : String(Math.min(n, 1)); },
    };
    for (const [k, v] of keys) {
      if (k === 'InitiatorName' || k === 'InitiatorAlias' || k === 'TargetName' || k === 'SessionType') continue;
      if (SECURITY_KEYS.test(k)) {
        // Security keys outside the security stage (RFC 7143 6.3: only in SecurityNegotiation).
        if (csg !== STAGE_SECURITY) reply.push([k, 'Irrelevant']);
        continue;
      }
      // Own keys only: a key named like an Object.prototype member ("__proto__", "hasOwnProperty",
      // "toString") is an unknown key (RFC 7143 6.2.1 NotUnderstood), never a prototype lookup.
      const a = Object.hasOwn(answers, k) ? answers[k] : undefined;
      if (this.ourOffers.has(k)) {
        // The initiator's answer to our offer: the result of the key's function (13), with no
        // answer back (6.2). An answer that is no value of the key (Reject, NotUnderstood, junk)
        // leaves the sides disagreeing: the login fails (as tgt does).
        this.ourOffers.delete(k);
        if (!this.takeAnswer(k, v)) return [LoginStatus.InitiatorError, 'login-offer-refused'];
      } else if (a) {
        if (this.negotiated.has(k)) return [LoginStatus.InitiatorError, 'login-renegotiated'];
        this.negotiated.add(k);
        reply.push([k, a(v)]);
      } else if (MARKER_BOOL.has(k)) {
        reply.push([k, 'No']);
      } else if (MARKER_INT.has(k)) {
        reply.push([k, 'Irrelevant']);
      } else if (NOT_FROM_INITIATOR.has(k)) {
        reply.push([k, 'Irrelevant']);
      } else {
        reply.push([k, 'NotUnderstood']); // RFC 7143 6.2.1
      }
    }
    return null;
  }

  /**
   * Keys whose result, with the initiator's RFC 7143 13 default on its side and our limits on
   * ours, differs from that default: left unsaid, the initiator would assume the default (e.g.
   * ImmediateData=Yes, 13.11, while the target was set up without immediate data). Normal
   * sessions only (these keys are Irrelevant to Discovery).
   */
  private offerList(): KeyPairs {
    const p = this.params;
    if (p.sessionType !== 'Normal') return [];
    const out: KeyPairs = [];
    const want = (k: string, v: string, dflt: string) => { if (!this.negotiated.has(k) && v !== dflt) out.push([k, v]); };
    want('ImmediateData', p.immediateData ? 'Yes' : 'No', 'Yes');
    want('MaxBurstLength', String(p.maxBurstLength), '262144');
    // 13.14: FirstBurstLength never exceeds MaxBurstLength, so both sides clamp the default to it.
    want('FirstBurstLength', String(p.firstBurstLength), String(Math.min(65536, p.maxBurstLength)));
    want('DefaultTime2Wait', String(p.defaultTime2Wait), '2');
    want('DefaultTime2Retain', String(p.defaultTime2Retain), '20');
    return out;
  }

  private wouldOffer(): boolean { return this.offerList().length > 0; }

  private makeOffers(): KeyPairs {
    const out = this.offerList();
    for (const [k, v] of out) { this.negotiated.add(k); this.ourOffers.set(k, v); }
    return out;
  }

  /** Applies the initiator's answer to a key we offered; false when it is no value of the key. */
  private takeAnswer(k: string, v: string): boolean {
    const p = this.params;
    const L = this.limits;
    if (k === 'ImmediateData') {
      const b = parseBool(v);
      if (b === undefined) return false;
      p.immediateData = b && L.immediateData; // 13.11: AND
      return true;
    }
    const n = parseNumber(v);
    const [lo, hi] = RANGE[k] ?? [0, -1];
    if (Number.isNaN(n) || n < lo || n > hi) return false;
    switch (k) {
      case 'MaxBurstLength': // 13.13: minimum; FirstBurstLength stays within it (13.14)
        p.maxBurstLength = Math.min(n, p.maxBurstLength);
        p.firstBurstLength = Math.min(p.firstBurstLength, p.maxBurstLength);
        return true;
      case 'FirstBurstLength': p.firstBurstLength = Math.min(n, p.firstBurstLength); return true; // 13.14: minimum
      case 'DefaultTime2Wait': p.defaultTime2Wait = Math.max(n, p.defaultTime2Wait); return true; // 13.15: maximum
      case 'DefaultTime2Retain': p.defaultTime2Retain = Math.min(n, p.defaultTime2Retain); return true; // 13.16: minimum
    }
    return false;
  }

  /** RFC 7143 13.1: the first value of the initiator's list that we support. */
  private digest(v: string, set: (on: boolean) => void): string {
    for (const c of v.split(',')) {
      if (c === 'None') { set(false); return 'None'; }
      if (c === 'CRC32C') { set(true); return 'CRC32C'; }
    }
    return 'Reject';
  }
}
