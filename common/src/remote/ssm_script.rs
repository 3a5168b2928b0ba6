//! What one Systems Manager Run Command carries to a set of hosts: a fixed shell text with the
//! work as data. The command (or job script), each host's identity lines and its login user,
//! and what every host reads the same (the case's host list, stdin) travel gzipped and
//! base64-encoded in
//! quoted here-documents of the `AWS-RunShellScript` document's `commands` parameter; on the
//! instance the script picks its own lines by `$AWS_SSM_INSTANCE_ID` (the agent sets it),
//! decodes them and runs the work as the host's login user in its home, through its login
//! shell, with the same stdin as over SSH. No instance data and no command text is ever shell
//! text, so nothing in them can change what runs.
//!
//! What does not belong here: sending, polling and output (aws/run_command.rs), what a task is
//! (task.rs).

use super::command::{hosts_lines, sh_quote, who_head, READ_WHO};
use super::task::Task;
use crate::case::descriptor::Descriptor;
use base64::Engine;

/// The most one command's script may hold, in bytes: well under what a SendCommand request
/// carries (a larger stdin or host list is refused before anything is sent).
pub const MAX_SCRIPT: usize = 64_000;

/// What one host runs, split as the script carries it: the shell text (the same for every
/// host of one command) and the host's own input lines ([`shared`] follows them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostWork {
    pub text: String,
    pub own: Vec<u8>,
}

/// Host `i`'s work in `task` (`None`: a copy, which is no command).
pub fn host_work(task: &Task, i: usize, d: &Descriptor) -> Option<HostWork> {
    match task {
        Task::Command { command, .. } => Some(HostWork {
            text: format!("{READ_WHO}eval {}", sh_quote(command.get(i))),
            own: who_head(d).into_bytes(),
        }),
        Task::Script { script, stdin } => Some(HostWork {
            text: script.clone(),
            own: stdin.get(i).clone(),
        }),
        Task::Put { .. } | Task::Get { .. } => None,
    }
}

/// The input every host of `task` reads after its own: the case's host list and stdin (a
/// command's), nothing (a job script's). Made once per run, whatever the fleet's size.
pub fn shared(task: &Task) -> Vec<u8> {
    match task {
        Task::Command { stdin, hosts, .. } => {
            let mut shared = hosts_lines(hosts).into_bytes();
            shared.extend_from_slice(stdin.as_deref().unwrap_or_default());
            shared
        }
        _ => Vec::new(),
    }
}

/// `data` gzipped (a host list of thousands compresses several-fold), base64 in 76-column
/// lines.
fn b64(data: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(gzip(data));
    let mut out = String::with_capacity(s.len() + s.len() / 76 + 1);
    for chunk in s.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// The delimiter of the data here-documents: `_` is not in base64's alphabet, so no data
/// line can end one early.
const EOD: &str = "EC2_TOOLS_DATA";

/// Where a script's data is: in the script, or at a (presigned) URL the host fetches — for a
/// host list too large to carry (thousands of instances).
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    Inline(&'a [u8]),
    Url(&'a str),
}

/// The table the script picks its host's line from: `id user base64(own input)` lines.
pub fn table(hosts: &[(&str, &str, &[u8])]) -> String {
    let mut table = String::new();
    for (id, user, own) in hosts {
        let one_line = |s: &str| s.replace(char::is_whitespace, "_");
        table.push_str(&format!(
            "{} {} {}\n",
            one_line(id),
            one_line(user),
            base64::engine::general_purpose::STANDARD.encode(own)
        ));
    }
    table
}

/// `data` gzipped, as a script's fetched data is stored.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// Shell lines that put `data` (gunzipped) into `$t/<name>`.
fn put_data(name: &str, data: Data) -> String {
    match data {
        Data::Inline(d) => format!(
            "base64 -d <<'{EOD}' | gzip -dc > \"$t/{name}\" || exit 125\n{}{EOD}\n",
            b64(d)
        ),
        Data::Url(u) => format!(
            "base64 -d <<'{EOD}' | gzip -dc > \"$t/{name}.url\" || exit 125\n{}{EOD}\n\
             curl -fsS --retry 3 -- \"$(cat \"$t/{name}.url\")\" | gzip -dc > \"$t/{name}\" \
             || {{ echo \"ec2-tools: cannot fetch this command's data from S3\" >&2; exit 125; }}\n",
            b64(u.as_bytes())
        ),
    }
}

/// The script running `text` on the hosts of `table` ([`table`]), each with `shared` input
/// after its own: the one `commands` value of an `AWS-RunShellScript` SendCommand.
pub fn script(text: &str, shared: Data, table: Data) -> String {
    format!(
        r#"# ec2-tools over SSM: the command and each instance's lines are data (base64), decoded here.
t=$(mktemp -d) || exit 125
trap 'rm -rf "$t"' EXIT
{c}{s}{h}l=$(grep "^${{AWS_SSM_INSTANCE_ID:-none}} " "$t/h") || {{ echo "ec2-tools: ${{AWS_SSM_INSTANCE_ID:-this instance}} is not among this command's hosts" >&2; exit 125; }}
u=${{l#* }}; u=${{u%% *}}
printf '%s\n' "${{l##* }}" | base64 -d > "$t/i" && cat "$t/s" >> "$t/i" || exit 125
chmod 755 "$t" && chmod 644 "$t/c" "$t/i" || exit 125
if [ "$(id -u)" = 0 ] && [ "$(id -un)" != "$u" ] && id "$u" >/dev/null 2>&1; then
  runuser -l "$u" -c "exec \"\${{SHELL:-/bin/sh}}\" -c \"\$(cat '$t/c')\" < '$t/i'"
else
  cd 2>/dev/null; "${{SHELL:-/bin/sh}}" -c "$(cat "$t/c")" < "$t/i"
fi
"#,
        c = put_data("c", Data::Inline(text.as_bytes())),
        s = put_data("s", shared),
        h = put_data("h", table),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::task::PerHost;

    fn desc(id: &str, index: u32) -> Descriptor {
        let mut d: Descriptor = serde_json::from_value(serde_json::json!({
            "id": id, "index": index, "case": "c1", "ssh": {"user": "u"}
        }))
        .unwrap();
        d.extra.insert("role".into(), "server".into());
        d
    }

    /// Run `script` as the SSM agent would on instance `id` (as this user: the non-root arm).
    fn run(script: &str, id: &str) -> (i32, String, String) {
        let home = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("AWS_SSM_INSTANCE_ID", id)
            .env("HOME", home.path())
            .env_remove("SHELL")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    #[test]
    fn instance_data_in_the_script_is_never_shell_text() {
        // A role, a command and stdin full of shell syntax: each comes out as it went in.
        let mut a = desc("i-a", 1);
        a.extra
            .insert("role".into(), "x'; echo pwned; '`id`$(id)".into());
        let b = desc("i-b", 2);
        let task = Task::Command {
            command: PerHost::Same(
                "printf '%s|%s|%s\\n' \"$CURRENT_AMI_ID\" \"$CURRENT_AMI_ROLE\" \"$CURRENT_AMI_INDEX\"; \
                 wc -l < \"$CURRENT_HOSTS\"; cat; exit 7"
                    .into(),
            ),
            stdin: Some(b"in'put $(x)\n".to_vec()),
            hosts: "1 i-a - 127.0.0.1 -\n2 i-b - 127.0.0.2 -\n".into(),
        };
        let wa = host_work(&task, 0, &a).unwrap();
        let wb = host_work(&task, 1, &b).unwrap();
        assert_eq!(wa.text, wb.text);
        let t = table(&[("i-a", "u", &wa.own), ("i-b", "u", &wb.own)]);
        let s = script(
            &wa.text,
            Data::Inline(&shared(&task)),
            Data::Inline(t.as_bytes()),
        );
        assert!(!s.contains("pwned") && !s.contains("in'put"));
        let (code, out, err) = run(&s, "i-a");
        assert_eq!(code, 7, "{err}");
        assert_eq!(
            out, "i-a|x'; echo pwned; '`id`$(id)|1\n2\nin'put $(x)\n",
            "{err}"
        );
        let (code, out, _) = run(&s, "i-b");
        assert_eq!((code, out.lines().next()), (7, Some("i-b|server|2")));
    }

    #[test]
    fn an_instance_not_in_the_table_runs_nothing() {
        let t = table(&[("i-a", "u", b"")]);
        let s = script("echo ran", Data::Inline(b""), Data::Inline(t.as_bytes()));
        let (code, out, err) = run(&s, "i-other");
        assert_eq!((code, out.as_str()), (125, ""));
        assert!(
            err.contains("i-other is not among this command's hosts"),
            "{err}"
        );
    }
}
