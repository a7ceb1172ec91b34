//! Manifests: bad ones are refused with file:line:col before any AWS call; the schema and the
//! examples stay in step with the code.

use std::path::Path;

use crate::support::*;

/// Nothing listens here: a command that tried to reach AWS would fail with a connection error
/// instead of the manifest problem.
const NO_AWS: &str = "http://127.0.0.1:9";

const VALID: &str = "stack: ok
source: { file: disk.raw }
build: { region: us-east-1 }
image:
  name: \"ok-{volume_type}\"
  architecture: x86_64
variants:
  volume_type: [gp3, standard]
regions: [us-east-1, eu-west-1]
";

fn problems(case: &str, text: &str) -> (std::process::Output, String) {
    let dir = workdir(&format!("bad-{case}"));
    std::fs::write(dir.join("disk.raw"), b"x").unwrap();
    std::fs::write(dir.join("m.yaml"), text).unwrap();
    let output = amiplan_at(NO_AWS, &dir, &["plan", "m.yaml"]);
    let err = stderr(&output);
    (output, err)
}

#[test]
fn bad_manifests_are_refused_with_positions_and_no_aws_call() {
    let cases: &[(&str, String, &str)] = &[
        ("unknown-region", VALID.replace("eu-west-1]", "mars-west-1]"), "m.yaml:9:22: unknown region `mars-west-1`\n"),
        (
            "region-typo",
            VALID.replace("eu-west-1]", "eu-wset-1]"),
            "m.yaml:9:22: unknown region `eu-wset-1` (did you mean `eu-west-1`?)",
        ),
        (
            "name-collision",
            VALID.replace("ok-{volume_type}", "ok-fixed"),
            "m.yaml:5:9: 2 variants expand to the AMI name `ok-fixed`",
        ),
        ("placeholder", VALID.replace("ok-{volume_type}", "ok-{colour}"), "m.yaml:5:9: unknown placeholder `{colour}`"),
        (
            "tpm-bios",
            VALID.replace("  architecture: x86_64\n", "  architecture: x86_64\n  tpm: true\n"),
            "m.yaml:7:8: tpm needs boot_mode uefi",
        ),
        (
            "paravirtual-kernel",
            VALID.replace("  architecture: x86_64\n", "  architecture: x86_64\n  virtualization: paravirtual\n"),
            "m.yaml:7:19: paravirtual needs image.kernel_id",
        ),
        (
            "encrypted-public",
            format!(
                "{}publish: {{ public: true }}\n",
                VALID.replace("standard]\n", "standard]\n  encrypted: [true]\n")
            ),
            "m.yaml:11:20: encrypted AMIs cannot be made public",
        ),
        ("missing-file", VALID.replace("file: disk.raw", "file: nowhere.raw"), "m.yaml:2:17: source file"),
        (
            "unknown-field",
            VALID.replace("  architecture: x86_64\n", "  architecture: x86_64\n  colour: blue\n"),
            "m.yaml:7:3: image: unknown field `colour`",
        ),
        ("wrong-type", VALID.replace("[gp3, standard]", "gp3"), "m.yaml:8:16: "),
        ("duplicate-key", format!("{VALID}stack: again\n"), "m.yaml:10:1: duplicate key `stack`"),
        (
            "keep-image-in-regions",
            VALID.replace("us-east-1 }", "us-east-1, keep_image: false }"),
            "m.yaml:3:41: `keep_image: false` removes the build region's AMIs once copied, but `regions` lists the build region us-east-1",
        ),
        (
            "keep-image-no-regions",
            VALID.replace("us-east-1 }", "us-east-1, keep_image: false }").replace("[us-east-1, eu-west-1]", "[]"),
            "m.yaml:3:41: `keep_image: false` needs `regions` to name where the AMIs are copied to",
        ),
        ("bad-yaml", "stack: [unclosed\n".to_string(), "m.yaml:"),
    ];
    for (case, text, expected) in cases {
        let (output, err) = problems(case, text);
        expect_code(&output, 1);
        assert!(err.contains(expected), "{case}: expected `{expected}` in:\n{err}");
        assert!(err.contains("nothing was sent to AWS"), "{case}: {err}");
    }
}

#[test]
fn a_source_that_does_not_match_its_digest_stops_before_aws() {
    let dir = workdir("digest");
    std::fs::write(dir.join("disk.raw"), b"not the published image").unwrap();
    let text = VALID.replace("file: disk.raw", &format!("file: disk.raw, sha256: \"{}\"", "ab".repeat(32)));
    std::fs::write(dir.join("m.yaml"), text).unwrap();
    let output = amiplan_at(NO_AWS, &dir, &["plan", "m.yaml"]);
    expect_code(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("but the manifest expects abab"), "{err}");
    assert!(!err.contains("dispatch failure") && !err.contains("reading live state"), "{err}");
}

#[test]
fn validate_reports_every_problem_at_once() {
    let dir = workdir("validate-all");
    std::fs::write(dir.join("disk.raw"), b"x").unwrap();
    let text = VALID.replace("ok-{volume_type}", "ok-{colour}").replace("eu-west-1]", "nowhere-1]");
    std::fs::write(dir.join("m.yaml"), text).unwrap();
    let output = amiplan_at(NO_AWS, &dir, &["validate", "m.yaml"]);
    expect_code(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("m.yaml:5:9: unknown placeholder") && err.contains("m.yaml:9:22: unknown region"), "{err}");
}

/// Two stacks may not write the same parameter: each would undo the other's every run.
#[test]
fn two_stacks_writing_one_parameter_are_refused() {
    let dir = workdir("parameter-collision");
    std::fs::write(dir.join("disk.raw"), b"x").unwrap();
    let catalog = "version: \"1\"\ncatalog: { ssm: { prefix: /shared, parameters: [\"{version}/{volume_type}\"] } }\n";
    let named = VALID.replace("ok-{volume_type}", "ok-{version}-{volume_type}");
    std::fs::write(dir.join("a.yaml"), format!("{named}{catalog}")).unwrap();
    let other = named.replace("stack: ok", "stack: other").replace("ok-{version}", "other-{version}");
    std::fs::write(dir.join("b.yaml"), format!("{other}{catalog}")).unwrap();
    let output = amiplan_at(NO_AWS, &dir, &["validate", "a.yaml", "b.yaml"]);
    expect_code(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("b.yaml:11:1: parameter `/shared/1/gp3` in us-east-1 is also written by stack `ok`"), "{err}");
}

#[test]
fn usage_errors_have_their_own_exit_code() {
    let dir = workdir("usage");
    expect_code(&amiplan_at(NO_AWS, &dir, &["plan", "--no-such-flag"]), 64);
    expect_code(&amiplan_at(NO_AWS, &dir, &["--help"]), 0);
}

#[test]
fn checked_in_schema_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checked_in = std::fs::read_to_string(root.join("schema/amiplan.schema.json")).unwrap_or_default();
    assert!(
        checked_in == amiplan::manifest::raw::json_schema(),
        "schema/amiplan.schema.json is stale: run `cargo run -- schema > schema/amiplan.schema.json`"
    );
}

#[test]
fn checked_in_plan_schema_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checked_in = std::fs::read_to_string(root.join("schema/plan.schema.json")).unwrap_or_default();
    assert!(
        checked_in == amiplan::render::document::json_schema(),
        "schema/plan.schema.json is stale: run `cargo run -- schema plan > schema/plan.schema.json`"
    );
    // The documentation's example is a plan of this format.
    let doc = std::fs::read_to_string(root.join("docs/plan-format.md")).unwrap();
    let example = doc.split("```json\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let example = plan_document(example);
    assert_eq!(example["format_version"], amiplan::render::document::FORMAT_VERSION);
}

#[test]
fn examples_and_shipped_manifests_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = workdir("examples");
    // Their images are made by the script the README names, as on a fresh clone.
    let made = std::process::Command::new(root.join("scripts/sample-images")).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for folder in ["examples", "manifests"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            // Scripts and files a bootstrap embeds live in subfolders.
            if path.is_dir() && path.file_name().is_some_and(|n| n != "images") {
                let target = dir.join(folder).join(path.file_name().unwrap());
                std::fs::create_dir_all(&target).unwrap();
                for file in std::fs::read_dir(&path).unwrap() {
                    let file = file.unwrap().path();
                    std::fs::copy(&file, target.join(file.file_name().unwrap())).unwrap();
                }
            }
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    text.starts_with("# yaml-language-server: $schema="),
                    "{} lacks the schema modeline",
                    path.display()
                );
                std::fs::copy(&path, dir.join(folder).join(path.file_name().unwrap())).unwrap();
            }
        }
        let output = amiplan_at(NO_AWS, &dir, &["validate", folder]);
        expect_code(&output, 0);
        // The examples' placeholders are flagged where they are, and nothing else is.
        let mut placeholders: Vec<String> = stderr(&output)
            .lines()
            .filter(|line| line.contains("is a placeholder"))
            .map(|line| line.split(": `").next().unwrap().replace(&format!("{}/", dir.display()), ""))
            .collect();
        placeholders.sort();
        let expected: &[&str] = match folder {
            "examples" => &[
                // source.bootstrap.tarball and .sha256; the helper's subnet and the sha256.
                "warning: examples/debian-bootstrap.yaml:15:14",
                "warning: examples/debian-bootstrap.yaml:16:13",
                "warning: examples/funtoo-bootstrap.yaml:12:13",
                "warning: examples/funtoo-bootstrap.yaml:21:22",
            ],
            _ => &[],
        };
        assert_eq!(placeholders, expected, "{}", stderr(&output));
    }
}

#[test]
fn a_build_region_outside_regions_is_said_not_refused() {
    let dir = workdir("build-region");
    std::fs::write(dir.join("disk.raw"), b"x").unwrap();
    let manifest = VALID.replace("regions: [us-east-1, eu-west-1]", "regions: [eu-west-1]");
    std::fs::write(dir.join("m.yaml"), &manifest).unwrap();
    let output = amiplan_at(NO_AWS, &dir, &["validate", "m.yaml"]);
    expect_code(&output, 0);
    let line = manifest.lines().position(|l| l.starts_with("regions:")).unwrap() + 1;
    assert!(
        stderr(&output).starts_with(&format!(
            "warning: m.yaml:{line}:1: `regions` does not list the build region us-east-1: the AMIs are made there all the same"
        )) && stderr(&output).contains("or set `build.keep_image: false` to remove them once the copies exist"),
        "{}",
        stderr(&output)
    );
    std::fs::write(dir.join("m.yaml"), manifest.replace("regions: [eu-west-1]", "regions: []")).unwrap();
    let output = amiplan_at(NO_AWS, &dir, &["validate", "m.yaml"]);
    expect_code(&output, 0);
    assert!(
        stderr(&output).contains("`regions` is empty: the AMIs are made and kept in the build region us-east-1 only")
    );
    // The notice names the way out; taking it leaves nothing to say.
    assert!(VALID.contains("build: { region: us-east-1 }"));
    let not_kept = manifest.replace("us-east-1 }", "us-east-1, keep_image: false }");
    std::fs::write(dir.join("m.yaml"), &not_kept).unwrap();
    let output = amiplan_at(NO_AWS, &dir, &["validate", "m.yaml"]);
    expect_code(&output, 0);
    assert!(!stderr(&output).contains("build region"), "{}", stderr(&output));
}

#[test]
fn graph_draws_the_desired_dependencies_without_aws() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = workdir("graph");
    let example = root.join("examples/debian-bootstrap.yaml");
    let example = example.to_str().unwrap();
    for format in ["dot", "mermaid"] {
        let drawn = amiplan_at(NO_AWS, &dir, &["graph", example, "--format", format]);
        expect_code(&drawn, 0);
        insta::assert_snapshot!(format!("graph_{format}"), stdout(&drawn));
    }
}

#[test]
fn completions_and_the_manual_cover_every_command() {
    let dir = workdir("completions");
    let commands = ["validate", "plan", "apply", "destroy", "output", "show", "graph", "policy", "completions", "man"];
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = amiplan_at(NO_AWS, &dir, &["completions", shell]);
        expect_code(&script, 0);
        let script = stdout(&script);
        for command in commands {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
        assert!(script.contains("detailed-exitcode") && script.contains("markdown"), "{shell}: flags complete");
    }
    // bash reads its script without a syntax error.
    std::fs::write(dir.join("amiplan.bash"), stdout(&amiplan_at(NO_AWS, &dir, &["completions", "bash"]))).unwrap();
    let checked = std::process::Command::new("bash").arg("-n").arg(dir.join("amiplan.bash")).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));

    let manual = amiplan_at(NO_AWS, &dir, &["man"]);
    expect_code(&manual, 0);
    let manual = stdout(&manual);
    assert!(manual.contains(".TH amiplan 1"), "a section-1 page");
    for command in commands {
        assert!(manual.contains(&format!("amiplan\\-{command}")), "the manual lists {command}");
    }
    assert!(manual.contains("Declarative AMI builds"), "the page says what amiplan is");
}

#[test]
fn the_github_actions_example_passes_actionlint_and_uses_real_flags() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workflow = root.join("examples/github-actions/amiplan.yml");
    let lint = |file: &Path| std::process::Command::new(root.join("scripts/actionlint")).arg(file).output().unwrap();
    let linted = lint(&workflow);
    assert_eq!(linted.status.code(), Some(0), "{}{}", stdout(&linted), stderr(&linted));
    // The linter finds problems when there are some: a misspelt context.
    let dir = workdir("actionlint");
    let text = std::fs::read_to_string(&workflow).unwrap();
    std::fs::write(
        dir.join("broken.yml"),
        text.replace("github.event.pull_request.number", "github.evnt.pull_request.number"),
    )
    .unwrap();
    let broken = lint(&dir.join("broken.yml"));
    assert_eq!(broken.status.code(), Some(1), "{}{}", stdout(&broken), stderr(&broken));
    assert!(stdout(&broken).contains("property \"evnt\" is not defined"), "{}", stdout(&broken));

    // Every amiplan command the workflow runs parses: no usage error (64), whatever else fails
    // without AWS or the files a run would have.
    let commands: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.trim().trim_start_matches("run: "))
        .filter_map(|line| line.strip_prefix("amiplan "))
        .map(|rest| rest.split_whitespace().take_while(|w| !matches!(*w, ">" | ">>" | "|" | "||" | ";")).collect())
        .collect();
    assert!(commands.len() >= 7, "{commands:?}");
    for args in commands {
        let output = amiplan_at(NO_AWS, &dir, &args);
        assert_ne!(output.status.code(), Some(64), "amiplan {}: {}", args.join(" "), stderr(&output));
    }
}

/// The statement of `policy` with this `Sid`.
fn statement<'a>(policy: &'a serde_json::Value, sid: &str) -> Option<&'a serde_json::Value> {
    policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid)
}

fn actions(statement: Option<&serde_json::Value>) -> Vec<&str> {
    statement.map_or(vec![], |s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect())
}

const EU_KEY: &str = "arn:aws:kms:eu-west-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const US_KEY: &str = "arn:aws:kms:us-east-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab";

#[test]
fn the_policy_follows_the_manifests_features_without_aws() {
    let dir = workdir("policy");
    std::fs::write(dir.join("disk.raw"), b"x").unwrap();
    let policy_of = |text: &str| -> serde_json::Value {
        std::fs::write(dir.join("m.yaml"), text).unwrap();
        let output = amiplan_at(NO_AWS, &dir, &["policy", "m.yaml"]);
        expect_code(&output, 0);
        serde_json::from_str(&stdout(&output)).unwrap()
    };

    // A direct upload copied to a second region: uploads, images and copies, nothing else.
    let direct = policy_of(VALID);
    let sids: Vec<&str> = direct["Statement"].as_array().unwrap().iter().map(|s| s["Sid"].as_str().unwrap()).collect();
    assert_eq!(sids, ["Discover", "MakeInTheManifestsRegions", "ChangeAndRemoveTheStacksOwnResources"]);
    let make = statement(&direct, "MakeInTheManifestsRegions").unwrap();
    assert_eq!(make["Condition"]["StringEquals"]["aws:RequestedRegion"], serde_json::json!(["eu-west-1", "us-east-1"]));
    let made = actions(Some(make));
    for action in
        ["ebs:StartSnapshot", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot", "ec2:RegisterImage", "ec2:CopyImage"]
    {
        assert!(made.contains(&action), "{action} missing from {made:?}");
    }
    assert!(!made.contains(&"ec2:RunInstances"), "no helper, no boot test: {made:?}");
    let own = statement(&direct, "ChangeAndRemoveTheStacksOwnResources").unwrap();
    assert_eq!(own["Condition"]["StringEquals"]["aws:ResourceTag/amiplan:stack"], serde_json::json!(["ok"]));
    assert!(!actions(Some(own)).contains(&"ec2:EnableImageDeprecation"));
    // Protection is lifted from any AMI of the stack before it is deregistered, declared or not.
    assert!(!actions(Some(own)).contains(&"ec2:EnableImageDeregistrationProtection"));
    assert!(actions(Some(own)).contains(&"ec2:DisableImageDeregistrationProtection"));
    assert!(!actions(statement(&direct, "Discover")).contains(&"ec2:GetImageBlockPublicAccessState"));

    // A role that prunes removes any stack's resources, from any build.
    let output = amiplan_at(NO_AWS, &dir, &["policy", "m.yaml", "--prune"]);
    expect_code(&output, 0);
    let pruning: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(statement(&pruning, "ChangeAndRemoveTheStacksOwnResources").is_none());
    let any = statement(&pruning, "ChangeAndRemoveAnyStacksResources").expect("a statement for any stack");
    assert_eq!(any["Condition"], serde_json::json!({"Null": {"aws:ResourceTag/amiplan:stack": "false"}}));
    assert!(actions(Some(any)).contains(&"ec2:TerminateInstances"), "{any}");

    // One region: no copy.
    let single = policy_of(&VALID.replace("[us-east-1, eu-west-1]", "[us-east-1]"));
    assert!(!actions(statement(&single, "MakeInTheManifestsRegions")).contains(&"ec2:CopyImage"));

    // Public: the account's block public access settings are read.
    let public = policy_of(&format!("{VALID}publish: {{ public: true }}\n"));
    assert!(actions(statement(&public, "Discover")).contains(&"ec2:GetImageBlockPublicAccessState"));

    // Shared, deprecated, protected, encrypted with a named key, catalogued: each adds its own
    // actions, parameters and objects scoped to the manifest's names.
    let full = policy_of(&format!(
        "version: \"1\"\n{}deprecate_after: 365d\nderegistration_protection: with-cooldown\npublish: {{ accounts: [\"210987654321\"] }}\ncatalog:\n  ssm: {{ prefix: /acme/ok }}\n  s3: {{ bucket: acme-amis, prefix: catalog, region: us-east-1 }}\n",
        VALID
            .replace("ok-{volume_type}", "ok-{version}-{volume_type}-{encryption}")
            .replace(
                "  architecture: x86_64\n",
                &format!("  architecture: x86_64\n  kms_keys: {{ eu-west-1: {EU_KEY}, us-east-1: {US_KEY} }}\n")
            )
            .replace("variants:\n", "variants:\n  encrypted: [false, true]\n")
    ));
    assert!(actions(statement(&full, "ChangeAndRemoveTheStacksOwnResources")).contains(&"ec2:EnableImageDeprecation"));
    let own = actions(statement(&full, "ChangeAndRemoveTheStacksOwnResources"));
    assert!(own.contains(&"ec2:EnableImageDeregistrationProtection"), "{own:?}");
    assert!(actions(statement(&full, "Discover")).contains(&"ec2:GetEbsEncryptionByDefault"));
    let parameters = statement(&full, "TheManifestsParameters").expect("a parameters statement");
    assert_eq!(
        parameters["Resource"],
        serde_json::json!(["arn:aws:ssm:*:*:parameter/acme/ok", "arn:aws:ssm:*:*:parameter/acme/ok/*"])
    );
    let files = statement(&full, "CatalogueFiles").expect("a catalogue statement");
    assert_eq!(files["Resource"], serde_json::json!(["arn:aws:s3:::acme-amis/catalog/*"]));
    assert_eq!(
        statement(&full, "ListCatalogueFiles").unwrap()["Resource"],
        serde_json::json!(["arn:aws:s3:::acme-amis"])
    );
    let keys = statement(&full, "UseTheManifestsKeys").expect("a key statement");
    assert_eq!(keys["Resource"], serde_json::json!([EU_KEY, US_KEY]));
    assert!(statement(&direct, "UseTheManifestsKeys").is_none());

    // For a pull request's role: the reads, nothing that changes anything.
    let output = amiplan_at(NO_AWS, &dir, &["policy", "m.yaml", "--read-only"]);
    expect_code(&output, 0);
    let read_only: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let sids: Vec<&str> =
        read_only["Statement"].as_array().unwrap().iter().map(|s| s["Sid"].as_str().unwrap()).collect();
    assert_eq!(sids, ["Discover", "TheManifestsParameters", "CatalogueFiles", "ListCatalogueFiles"]);
    assert_eq!(
        actions(statement(&read_only, "TheManifestsParameters")),
        ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
    );
    assert_eq!(actions(statement(&read_only, "CatalogueFiles")), ["s3:GetObject", "s3:GetObjectTagging"]);

    // The sharing quota is read only where an AMI is shared past AWS's default 1,000 entities.
    assert!(!actions(statement(&full, "Discover")).contains(&"servicequotas:GetServiceQuota"));
    let accounts: Vec<String> = (0..1_001).map(|i| format!("\"{}\"", 300_000_000_000u64 + i)).collect();
    let wide = policy_of(&format!("{VALID}publish: {{ accounts: [{}] }}\n", accounts.join(", ")));
    assert!(actions(statement(&wide, "Discover")).contains(&"servicequotas:GetServiceQuota"));

    // The policy follows from the manifest's shape: written where the image is not, it is the
    // same, and so is the graph.
    assert_eq!(policy_of(VALID), direct);
    let graph = amiplan_at(NO_AWS, &dir, &["graph", "m.yaml"]);
    std::fs::remove_file(dir.join("disk.raw")).unwrap();
    assert_eq!(policy_of(VALID), direct);
    let without = amiplan_at(NO_AWS, &dir, &["graph", "m.yaml"]);
    expect_code(&without, 0);
    assert_eq!(stdout(&without), stdout(&graph));
    expect_code(&amiplan_at(NO_AWS, &dir, &["validate", "m.yaml"]), 1);
}

#[test]
fn the_helper_examples_policy_is_as_reviewed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = workdir("policy-helper");
    let example = root.join("examples/fedora-helper.yaml");
    let output = amiplan_at(NO_AWS, &dir, &["policy", example.to_str().unwrap()]);
    expect_code(&output, 0);
    insta::assert_snapshot!("policy_fedora_helper", stdout(&output));
}
