//! Output into a pipe that closes early (`energy-fit … | head -1`): the command ends quietly, as
//! command-line tools do, instead of panicking on the failed write.

use crate::common::BIN;
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_the_command_without_a_panic() {
    let mut child = Command::new(BIN)
        .args(["design", "--llm", "llama-3.2-1b", "--budget-s", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the pipe before the child has printed anything: its first write fails.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(!status.success() || err.is_empty(), "{status:?} {err}");
}
