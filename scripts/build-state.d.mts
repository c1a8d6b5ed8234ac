// Types of build-state.mjs, for the TypeScript that imports it (src/build.test.ts).
export declare const ROOT: string;
export declare const DIST: string;
export declare const STAMP: string;
export declare function newestSource(root?: string): { ms: number; path: string };
export declare function buildTime(root?: string): number | null;
export declare function buildState(root?: string): { state: 'fresh' } | { state: 'missing' } | { state: 'stale'; path: string };
