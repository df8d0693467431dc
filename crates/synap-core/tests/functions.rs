//! Function libraries in snapshots: the walk goes on by name, so a library deleted between two chunks
//! moves no other library out of the snapshot.

use bytes::Bytes;
use synap_core::command::{Command, ScriptCmd};
use synap_core::engine::EngineCursor;
use synap_core::mutation::{Mutation, decode_batch};
use synap_core::{Engine, EngineConfig, ExecCtx};

fn run(e: &Engine, cmd: ScriptCmd) {
    e.execute(&mut ExecCtx::default(), Command::Script(cmd)).unwrap();
}

fn library(i: usize) -> Bytes {
    Bytes::from(format!("#!lua name=lib{i:03}\nredis.register_function('f{i}', function() return {i} end)"))
}

#[test]
fn a_library_deleted_during_a_snapshot_takes_no_other_with_it() {
    let e = Engine::in_memory(EngineConfig::default());
    for i in 0..300 {
        run(&e, ScriptCmd::FunctionLoad { code: library(i), replace: false });
    }
    let mut cursor = EngineCursor::default();
    let mut names = Vec::new();
    let mut first = true;
    loop {
        let mut out = Vec::new();
        let Some(_) = e.snapshot_chunk(&mut cursor, 100, &mut out) else { break };
        for m in decode_batch(&out).unwrap() {
            if let Mutation::FunctionLoad { code } = m {
                names.push(
                    String::from_utf8_lossy(&code[..code.iter().position(|&b| b == b'\n').unwrap()]).into_owned(),
                );
            }
        }
        if first && !names.is_empty() {
            // After the first chunk of libraries, one already written goes.
            run(&e, ScriptCmd::FunctionDelete(Bytes::from("lib000")));
            first = false;
        }
    }
    assert_eq!(names.len(), 300, "every library that existed throughout is in the snapshot once");
    for i in 0..300 {
        assert!(names.contains(&format!("#!lua name=lib{i:03}")), "lib{i:03}");
    }
}
