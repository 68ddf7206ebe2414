import { registerConformance } from "../testing/storage_conformance.ts";
import { openFsFixture } from "../testing/storage_fixtures.ts";

registerConformance({ name: "local", open: () => openFsFixture("local") });
