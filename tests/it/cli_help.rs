//! The command line documents itself: every flag and argument of every subcommand has help text,
//! and exactly the commands that drive the GPU say so in their one-line description.

use clap::CommandFactory;
use energy_fit::cli::Cli;

/// Commands that need a GPU to do their work (measure's --dry-run and the stand-in aside).
const GPU_COMMANDS: [&str; 5] = ["measure", "bench", "selftest", "engine-run", "engine-dump"];

fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        if arg
            .get_help()
            .is_none_or(|h| h.to_string().trim().is_empty())
        {
            missing.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        walk(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

#[test]
fn every_argument_of_every_command_has_help() {
    let cmd = Cli::command();
    let mut missing = Vec::new();
    walk(&cmd, "energy-fit", &mut missing);
    assert!(missing.is_empty(), "arguments without help: {missing:?}");
    // The walk saw the subcommands and their flags (not an empty tree).
    let measure = cmd.find_subcommand("measure").unwrap();
    assert!(measure.get_arguments().any(|a| a.get_id() == "idle_s"));
}

#[test]
fn gpu_commands_say_they_need_a_gpu_and_no_other_does() {
    let cmd = Cli::command();
    for sub in cmd.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let says = about.contains("(needs a GPU)");
        let needs = GPU_COMMANDS.contains(&sub.get_name());
        assert_eq!(says, needs, "{}: {about:?}", sub.get_name());
    }
    for name in GPU_COMMANDS {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_energy-fit"))
            .args([name, "--help"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{name} --help");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("(needs a GPU)"), "{name} --help:\n{text}");
    }
}
