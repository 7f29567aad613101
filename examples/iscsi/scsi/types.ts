/**
 * The contract between the iSCSI layer (session.ts: PDUs, sequencing, data transfer) and the SCSI
 * layer (scsi/: SPC and SBC command handling over LUN backends). The session collects a command's
 * Data-Out, hands the command here, and turns the result into Data-In and SCSI Response PDUs,
 * computing residuals from the expected data transfer length.
 */

/** SAM-5 status codes. */
export const enum ScsiStatus {
  Good = 0x00,
  CheckCondition = 0x02,
  ConditionMet = 0x04,
  Busy = 0x08,
  ReservationConflict = 0x18,
  TaskSetFull = 0x28,
  TaskAborted = 0x40,
}

/** SAM task attributes (iSCSI SCSI Command PDU ATTR field). */
export const enum TaskAttr { Untagged = 0, Simple = 1, Ordered = 2, HeadOfQueue = 3, Aca = 4 }

export interface ScsiCommand {
  /** LUN number as decoded from the 8-byte LUN field (single level, peripheral/flat addressing). */
  readonly lun: number;
  /** The CDB (16 bytes from the BHS; commands with a longer CDB are rejected by the session). */
  readonly cdb: Uint8Array;
  /** Expected Data Transfer Length of the PDU (bytes the initiator will send or accept). */
  readonly expectedLength: number;
  readonly read: boolean;
  readonly write: boolean;
  /**
   * Write data as received, in order, totalling min(expectedLength, what arrived) bytes: views into
   * received frames where possible, so a backend copies each byte at most once. Valid only until
   * `done` is called. Empty for commands without Data-Out.
   */
  readonly dataOut: readonly Uint8Array[];
  /** The I_T nexus: initiator port name ("iqn...,i,0x<ISID>"), stable across reconnects of one session. */
  readonly nexus: string;
  readonly attr: TaskAttr;
  readonly taskTag: number;
}

export interface ScsiResult {
  status: ScsiStatus;
  /** Sense data (fixed or descriptor format) for CHECK CONDITION. */
  sense?: Uint8Array;
  /**
   * Data-In, in order (views into backend memory are fine: the send path copies them once). May be
   * longer than expectedLength (the session truncates and reports overflow) or shorter (underflow).
   */
  dataIn?: readonly Uint8Array[];
  /**
   * For commands with Data-Out: the number of bytes the CDB asked for, when it differs from
   * expectedLength (the session reports the residual: underflow if expectedLength was larger,
   * overflow if smaller).
   */
  transferLength?: number;
}

/** One SCSI target device: its LUNs, command execution and the device side of task management. */
export interface ScsiTarget {
  /** LUN numbers, ascending. */
  readonly luns: readonly number[];
  /**
   * Executes a command; `done` is called exactly once, synchronously or later (file I/O). A command
   * for a LUN that does not exist answers as SPC-4 says (INQUIRY: peripheral qualifier 3; others:
   * CHECK CONDITION, ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED), never throws.
   */
  execute(cmd: ScsiCommand, done: (r: ScsiResult) => void): void;
  /** LOGICAL UNIT RESET from `nexus` (the session has aborted its tasks): unit attention for the others. */
  lunReset(lun: number, nexus: string): void;
  /** TARGET WARM/COLD RESET from `nexus`. */
  targetReset(nexus: string): void;
  /** A nexus ended (session closed or reinstated). */
  nexusLost(nexus: string): void;
  /** Flushes every backend (clean stop); resolves when data is on disk. */
  flush(): Promise<void>;
  /** Closes backends (file descriptors). */
  close(): void;
}

/** A LUN as the config describes it. */
export interface LunSpec {
  lun: number;
  /** Size in bytes (a multiple of blockSize). */
  size: number;
  /** Logical block size, 512 or 4096 (default 512). */
  blockSize?: number;
  /** Backing file (created sparse if missing, size kept if larger); RAM when absent. */
  file?: string;
  /** Unit serial number (VPD 0x80) and the NAA identifier seed (VPD 0x83); derived from IQN+LUN when absent. */
  serial?: string;
}

/** A target as the config describes it. */
export interface TargetSpec {
  /** iSCSI qualified name (iqn. or eui. or naa.), lower case. */
  iqn: string;
  luns: LunSpec[];
  /** One-way CHAP: the initiator must authenticate with this user/secret. */
  chap?: { user: string; secret: string };
}
