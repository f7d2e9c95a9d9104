//! `wren completion bash`: a bash completion script (commands, options,
//! and container names from `wren list --json`).
//!
//! Runs in `wren`.

/// The bash script; `source <(wren completion bash)`.
pub const BASH: &str = r#"# bash completion for wren; load with: source <(wren completion bash)
_wren_names() {
    wren list --json 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p'
}
_wren() {
    local cur prev cmd
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    cmd="${COMP_WORDS[1]}"
    local cmds="run create start stop kill rm pause resume exec list ls inspect ps stats update logs events completion"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$cmds --root --socket --json" -- "$cur"))
        return
    fi
    case "$prev" in
        --rootfs|--bundle|--root|--resources|-w|--cwd) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --restart) COMPREPLY=($(compgen -W "no on-failure on-failure: always unless-stopped" -- "$cur")); return ;;
        -s|--signal) COMPREPLY=($(compgen -W "TERM KILL INT HUP QUIT USR1 USR2" -- "$cur")); return ;;
    esac
    local opts=""
    case "$cmd" in
        run) opts="-d --rm -i -t --restart --start-at-boot -e -w --rootfs --bundle" ;;
        create) opts="-i -t --restart --start-at-boot -e -w --rootfs --bundle" ;;
        exec) opts="-d -i -t -e -w" ;;
        stop) opts="-t -s" ;;
        kill) opts="-s --all" ;;
        rm) opts="-f" ;;
        logs) opts="-f --tail" ;;
        list|ls|ps|stats|events) opts="--json" ;;
        update) opts="--memory --cpu-shares --pids-limit --resources" ;;
        completion) COMPREPLY=($(compgen -W "bash" -- "$cur")); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_wren_names)" -- "$cur"))
    fi
}
complete -F _wren wren
"#;
