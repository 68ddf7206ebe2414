/**
 * lpm's own container images (controller and agent), built with `oci/` from
 * this machine's deno binary, lpm's source and a pre-filled DENO_DIR, and
 * pushed to a registry. See docs/install.md.
 *
 * ```ts
 * const built = await buildLpmImages({ onProgress: console.error });
 * const pushed = await pushLpmImages(built, "127.0.0.1:5000");
 * ```
 * @module
 */
export { APP_FOLDERS, buildLpmImages, DENO_DIR, entrypoint, IMAGES } from "./build.ts";
export type { BuildImagesOptions, BuildImagesResult, BuiltImage, ImageName } from "./build.ts";
export { pushLpmImages } from "./push.ts";
export type { PushedLpmImage } from "./push.ts";
