import { requirePart } from "../tests/env.ts";
import { registerConformance } from "./_conformance.ts";
import { openBucketFixture } from "./_fixtures.ts";

registerConformance({ name: "s3", open: () => openBucketFixture("s3", requirePart("minio")) });
