/**
 * Mode pages of a logical unit (SPC-4 and SBC-3 "Mode parameters"): their current, changeable
 * and default values, and the check of a page sent by MODE SELECT. Pages are shared by every I_T nexus.
 * Changeable: WCE (Caching), D_SENSE and SWP (Control). Nothing can be saved.
 */

/** Page codes (SPC-4 / SBC-3 mode page codes). */
export const enum Page {
  ReadWriteErrorRecovery = 0x01,
  Caching = 0x08,
  Control = 0x0a,
  InformationalExceptions = 0x1c,
  All = 0x3f,
}

/** The changeable settings. */
export interface ModeState {
  /** Caching page WCE: a write-back cache (SBC-3, Caching mode page). */
  wce: boolean;
  /** Control page D_SENSE: descriptor-format sense data (SPC-4, Control mode page). */
  dSense: boolean;
  /** Control page SWP: software write protect (SPC-4, Control mode page): the medium is write-protected. */
  swp: boolean;
}

export function defaultMode(): ModeState {
  return { wce: true, dSense: false, swp: false };
}

/** Page control field of MODE SENSE (SPC-4, MODE SENSE(6)). */
export const enum PageControl { Current = 0, Changeable = 1, Default = 2, Saved = 3 }

/** Supported pages in ascending order (the order MODE SENSE returns "all pages" in). */
export const PAGES: readonly Page[] = [Page.ReadWriteErrorRecovery, Page.Caching, Page.Control, Page.InformationalExceptions];

/** Page length in bytes, header included. */
export function pageSize(p: Page): number {
  return p === Page.Caching ? 20 : 12;
}

/** The page's bytes for the given page control (Saved is refused before this is called). */
export function renderPage(p: Page, pc: PageControl, cur: ModeState): Uint8Array {
  const b = new Uint8Array(pageSize(p));
  b[0] = p; // PS = 0: the page cannot be saved (SPC-4, mode page format).
  b[1] = b.length - 2;
  const s = pc === PageControl.Default ? defaultMode() : cur;
  const changeable = pc === PageControl.Changeable;
  switch (p) {
    case Page.ReadWriteErrorRecovery:
      // SBC-3 Read-Write Error Recovery: no retries to tune; every field 0, nothing changeable.
      break;
    case Page.Caching:
      // SBC-3 Caching page byte 2: WCE (bit 2); RCD (bit 0) = 0, the read cache is on.
      if (changeable) b[2] = 0x04;
      else if (s.wce) b[2] |= 0x04;
      break;
    case Page.Control:
      if (changeable) { b[2] = 0x04; b[4] = 0x08; break; }
      // SPC-4 Control page: TST 000b, D_SENSE (byte 2 bit 2), GLTSD = 1 (no log parameters saved);
      // QUEUE ALGORITHM MODIFIER 1 (commands may be reordered: file I/O completes out of order),
      // QERR 00b; SWP (byte 4 bit 3); BUSY TIMEOUT PERIOD FFFFh (unlimited).
      b[2] = 0x02 | (s.dSense ? 0x04 : 0);
      b[3] = 0x10;
      b[4] = s.swp ? 0x08 : 0;
      b[8] = 0xff; b[9] = 0xff;
      break;
    case Page.InformationalExceptions:
      // SPC-4 Informational Exceptions Control: DEXCPT = 1 (no failure prediction), MRIE 0.
      if (!changeable) b[2] = 0x08;
      break;
    default:
      break;
  }
  return b;
}

/** Changeable-bit mask of a page (renderPage with PageControl.Changeable). */
export function changeableMask(p: Page): Uint8Array {
  return renderPage(p, PageControl.Changeable, defaultMode());
}

export function isPage(code: number): code is Page {
  return code === Page.ReadWriteErrorRecovery || code === Page.Caching || code === Page.Control
    || code === Page.InformationalExceptions;
}

/**
 * Applies a page from a MODE SELECT parameter list to `next` after checking that only
 * changeable bits differ from the current values (SPC-4, MODE SELECT: a field that is not
 * changeable and differs is an INVALID FIELD IN PARAMETER LIST). Returns the offset within the
 * page of the first offending byte, or -1 when the page is acceptable.
 */
export function selectPage(p: Page, page: Uint8Array, cur: ModeState, next: ModeState): number {
  const now = renderPage(p, PageControl.Current, cur);
  const mask = changeableMask(p);
  // Byte 0 holds PS (reserved in MODE SELECT, ignored) and SPF; byte 1 the length, checked by the caller.
  for (let i = 2; i < now.length; i++) {
    if (((page[i] ^ now[i]) & ~mask[i] & 0xff) !== 0) return i;
  }
  switch (p) {
    case Page.Caching: next.wce = (page[2] & 0x04) !== 0; break;
    case Page.Control: next.dSense = (page[2] & 0x04) !== 0; next.swp = (page[4] & 0x08) !== 0; break;
    default: break;
  }
  return -1;
}
