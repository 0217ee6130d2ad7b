//! A stack under its event (`inspect --stacks`): one line per frame, innermost first.

use std::fmt::Write as _;

use recorder_proto::v1::{Stack, StackFrame};

/// The stack's frames, each on its own indented line.
pub fn frames(stack: &Stack) -> String {
    let mut text = String::new();
    for frame in &stack.frames {
        let _ = writeln!(text, "      at {}", frame_line(frame));
    }
    text
}

/// `function (file:line) in module+0xoffset`, with whatever of it is known.
pub fn frame_line(frame: &StackFrame) -> String {
    let mut line = if frame.function.is_empty() {
        "??".to_owned()
    } else {
        frame.function.clone()
    };
    if !frame.file.is_empty() {
        let _ = write!(line, " ({}:{})", frame.file, frame.line);
    }
    if !frame.build_id.is_empty() {
        let module = if frame.module.is_empty() {
            format!("build-id {}", hex(&frame.build_id))
        } else {
            frame.module.clone()
        };
        let _ = write!(line, " in {module}+{:#x}", frame.file_offset);
    } else if frame.address != 0 {
        let _ = write!(line, " at {:#x}", frame.address);
    }
    if frame.from_stack_top {
        line.push_str(" (caller of a frameless function, from the top of the stack)");
    }
    line
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_says_what_is_known_of_it() {
        let named = StackFrame {
            function: "save_record".into(),
            file: "/src/deep.c".into(),
            line: 4,
            module: "/usr/bin/deep".into(),
            build_id: vec![0xab, 0x01],
            file_offset: 0x117e,
            ..StackFrame::default()
        };
        assert_eq!(
            frame_line(&named),
            "save_record (/src/deep.c:4) in /usr/bin/deep+0x117e"
        );
        let unnamed = StackFrame {
            build_id: vec![0xab, 0x01],
            file_offset: 0x20,
            from_stack_top: true,
            ..StackFrame::default()
        };
        assert_eq!(
            frame_line(&unnamed),
            "?? in build-id ab01+0x20 (caller of a frameless function, from the top of the stack)"
        );
        let jit = StackFrame {
            address: 0x3a1c0050,
            function: "LazyCompile:~main".into(),
            ..StackFrame::default()
        };
        assert_eq!(frame_line(&jit), "LazyCompile:~main at 0x3a1c0050");
    }
}
