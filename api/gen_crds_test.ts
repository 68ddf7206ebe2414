import { assert, assertEquals } from "@std/assert";
import { parse } from "yaml";
import { CRD_DIR, diffCrds, renderCrds, writeCrds } from "./gen_crds.ts";
import { KINDS } from "./types.ts";

Deno.test("api: committed crds/ equal what api/schema/ generates (no drift)", async () => {
  assertEquals(
    await diffCrds(CRD_DIR),
    [],
    'crds/ is out of date with api/schema/: run "deno task gen:crds"',
  );
});

Deno.test("api: the generator writes one CRD per kind and diffCrds notices an edit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lpm-crds-" });
  try {
    const names = (await writeCrds(dir)).filter((n) => n !== "kustomization.yaml");
    assertEquals(names.length, Object.keys(KINDS).length);
    assertEquals(await diffCrds(dir), []);
    const first = `${dir}/${names[0]}`;
    await Deno.writeTextFile(
      first,
      (await Deno.readTextFile(first)).replace("maxLength", "maxLen"),
    );
    await Deno.writeTextFile(`${dir}/lpm.my.domain_stale.yaml`, "kind: Stale\n");
    assertEquals(await diffCrds(dir), [names[0], "lpm.my.domain_stale.yaml"].sort());
    await writeCrds(dir);
    assertEquals(await diffCrds(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("api: every generated CRD is v1, served and stored, with status, short name and category lpm", () => {
  for (const [file, text] of renderCrds()) {
    if (file === "kustomization.yaml") continue;
    // deno-lint-ignore no-explicit-any
    const crd = parse(text) as any;
    const kind = Object.values(KINDS).find((k) => crd.spec.names.kind === k.kind);
    assert(kind, `${file}: unknown kind ${crd.spec.names.kind}`);
    assertEquals(crd.metadata.name, `${kind.plural}.lpm.my.domain`);
    assertEquals(crd.spec.scope, kind.namespaced ? "Namespaced" : "Cluster");
    assertEquals(crd.spec.names.categories, ["lpm"]);
    assertEquals(crd.spec.versions.length, 1);
    const v = crd.spec.versions[0];
    assertEquals([v.name, v.served, v.storage], ["v1", true, true]);
    assertEquals(v.subresources, { status: {} });
    assertEquals(v.schema.openAPIV3Schema.required, ["spec"]);
  }
});

Deno.test("api: crds/kustomization.yaml lists exactly the CRD files", () => {
  const files = renderCrds();
  const k = files.get("kustomization.yaml");
  assert(k, "the generator wrote no kustomization.yaml");
  const crdFiles = [...files.keys()].filter((n) => n !== "kustomization.yaml").sort();
  assertEquals((parse(k) as { resources: string[] }).resources, crdFiles);
});
