import { registerConformance } from "./_conformance.ts";
import { openFsFixture } from "./_fixtures.ts";

registerConformance({ name: "local", open: () => openFsFixture("local") });
