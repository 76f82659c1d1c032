#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""doccheck.py KSRC ROOT: check the documentation the way the kernel does.

1. scripts/kernel-doc -none -Wall on the UAPI header and the driver's
   sources: any warning fails.
2. Sphinx (as "make htmldocs" runs it, with warnings as errors) on
   Documentation/, with a "kernel-doc" directive that pulls in
   scripts/kernel-doc -rst output the way the kernel's own extension does.

Runs with Debian's python3 (python3-sphinx). Exit status 1 on any finding.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import ViewList


def kernel_doc(ksrc, args):
    return subprocess.run(["perl", os.path.join(ksrc, "scripts/kernel-doc")]
                          + args, capture_output=True, text=True)


class KernelDocDirective(Directive):
    """.. kernel-doc:: FILE, relative to the tree (ROOT)."""
    required_arguments = 1
    option_spec = {"identifiers": directives.unchanged}

    def run(self):
        env = self.state.document.settings.env
        cfg = env.config
        path = os.path.join(cfg.doccheck_root, self.arguments[0])
        args = ["-rst", "-enable-lineno"]
        for ident in self.options.get("identifiers", "").split():
            args += ["-function", ident]
        res = kernel_doc(cfg.doccheck_ksrc, args + [path])
        if res.returncode or res.stderr.strip():
            raise self.error("kernel-doc %s: %s" % (path, res.stderr))
        # "-enable-lineno" marks where each part comes from, for messages.
        lines = ViewList()
        lineno = 0
        for line in res.stdout.splitlines():
            mark = re.match(r"^\.\. LINENO (\d+)$", line)
            if mark:
                lineno = int(mark.group(1)) - 1
                continue
            lines.append(line, path, lineno)
            lineno += 1
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(lines, self.content_offset, node,
                                match_titles=True)
        return node.children


def setup(app):
    app.add_config_value("doccheck_root", "", "env")
    app.add_config_value("doccheck_ksrc", "", "env")
    app.add_directive("kernel-doc", KernelDocDirective)
    return {"parallel_read_safe": True}


def check_kernel_doc(ksrc, root):
    files = [os.path.join(root, "include/uapi/linux/ich9smi.h")]
    files += sorted(glob.glob(os.path.join(root, "drivers/virt/ich9smi/*.[ch]")))
    res = kernel_doc(ksrc, ["-none", "-Wall"] + files)
    out = (res.stdout + res.stderr).strip()
    if res.returncode or out:
        print(out or "kernel-doc failed (status %d)" % res.returncode)
        return False
    print("kernel-doc -none -Wall: %d files clean" % len(files))
    return True


def check_sphinx(ksrc, root):
    from sphinx.cmd.build import build_main

    docs = sorted(glob.glob("**/*.rst", root_dir=os.path.join(root, "Documentation"),
                            recursive=True))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        shutil.copytree(os.path.join(root, "Documentation"), src)
        with open(os.path.join(src, "index.rst"), "w") as f:
            f.write("ich9smi\n=======\n\n.. toctree::\n\n")
            f.write("".join("   %s\n" % d[:-4] for d in docs))
        with open(os.path.join(src, "conf.py"), "w") as f:
            f.write("import sys\nsys.path.insert(0, %r)\n"
                    "extensions = ['doccheck']\n"
                    "doccheck_root = %r\ndoccheck_ksrc = %r\n"
                    "primary_domain = 'c'\n"
                    % (os.path.dirname(os.path.abspath(__file__)), root, ksrc))
        ret = build_main(["-W", "--keep-going", "-q", "-b", "dummy",
                          src, os.path.join(tmp, "out")])
    if ret:
        return False
    print("sphinx -W: %s clean" % ", ".join(docs))
    return True


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: doccheck.py KSRC ROOT")
    ksrc, root = (os.path.abspath(a) for a in sys.argv[1:])
    ok = check_kernel_doc(ksrc, root)
    ok = check_sphinx(ksrc, root) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
