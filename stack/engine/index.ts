/** The engine (see ./engine.ts for the layout of the receive and output paths). */
export * from './engine';
export type { RxMeta } from './meta';
