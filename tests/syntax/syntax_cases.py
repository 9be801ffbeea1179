"""Per-language fixtures shared by the syntax guard tests.

Each language has a cursor inside a small function where an expression is expected (`prefix`,
`suffix`), a call whose closing brackets the suffix provides (`call_prefix`, `call_suffix`), a
filler of ~200 valid lines, and a line that breaks a document far from the cursor.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    language: str
    prefix: str  # cursor where an expression is expected
    suffix: str
    expression: str  # a valid completion at that cursor
    call_prefix: str  # cursor inside `add(1, |)`
    call_suffix: str
    filler_line: str  # one valid top-level definition; {i} numbers it
    broken_line: str  # a syntax error far from the cursor
    header: str = ""  # what must precede everything (Go's package clause)


CASES = [
    Case(
        "python",
        prefix="def add(a, b):\n    return ",
        suffix="\n\nprint(add(1, 2))\n",
        expression="a + b",
        call_prefix="def add(a, b):\n    return a + b\n\nprint(add(1, ",
        call_suffix="))\n",
        filler_line="def f{i}(a, b):\n    x = a + b\n    return x * {i}\n\n",
        broken_line="def broken(:\n    pass\n",
    ),
    Case(
        "javascript",
        prefix="function add(a, b) {\n  return ",
        suffix=";\n}\n\nconsole.log(add(1, 2));\n",
        expression="a + b",
        call_prefix="console.log(add(1, ",
        call_suffix="));\n",
        filler_line="function f{i}(a, b) {{\n  const x = a + b;\n  return x * {i};\n}}\n\n",
        broken_line="let x = foo(1,;\n",
    ),
    Case(
        "typescript",
        prefix="function add(a: number, b: number): number {\n  return ",
        suffix=";\n}\n",
        expression="a + b",
        call_prefix="console.log(add(1, ",
        call_suffix="));\n",
        filler_line=(
            "function f{i}(a: number, b: number): number {{\n  const x = a + b;\n  return x * {i};\n}}\n\n"
        ),
        broken_line="interface I { a: ; }\n",
    ),
    Case(
        "tsx",
        prefix='const App = (p: { n: number }) => <div className="app">{',
        suffix="}</div>;\n",
        expression="p.n + 1",
        call_prefix="console.log(add(1, ",
        call_suffix="));\n",
        filler_line="function F{i}() {{\n  return <span>{{{i}}}</span>;\n}}\n\n",
        broken_line="let x: = 1;\n",
    ),
    Case(
        "go",
        prefix="func add(a int, b int) int {\n\treturn ",
        suffix="\n}\n",
        expression="a + b",
        call_prefix="func main() {\n\tfmt.Println(add(1, ",
        call_suffix="))\n}\n",
        filler_line="func f{i}(a int, b int) int {{\n\tx := a + b\n\treturn x * {i}\n}}\n\n",
        broken_line="func broken( {\n}\n",
        header="package main\n\n",
    ),
    Case(
        "rust",
        prefix="fn add(a: i32, b: i32) -> i32 {\n    ",
        suffix="\n}\n",
        expression="a + b",
        call_prefix='fn main() {\n    println!("{}", add(1, ',
        call_suffix="));\n}\n",
        filler_line="fn f{i}(a: i32, b: i32) -> i32 {{\n    let x = a + b;\n    x * {i}\n}}\n\n",
        broken_line="fn broken( {\n}\n",
    ),
    Case(
        "java",
        prefix="class A {\n  int add(int a, int b) {\n    return ",
        suffix=";\n  }\n}\n",
        expression="a + b",
        call_prefix="class B {\n  void main() {\n    System.out.println(add(1, ",
        call_suffix="));\n  }\n}\n",
        filler_line="class F{i} {{\n  int f(int a, int b) {{\n    return a + b * {i};\n  }}\n}}\n\n",
        broken_line="class Broken { int = 5; }\n",
    ),
    Case(
        "c",
        prefix="int add(int a, int b) {\n  return ",
        suffix=";\n}\n",
        expression="a + b",
        call_prefix='int main(void) {\n  printf("%d", add(1, ',
        call_suffix="));\n}\n",
        filler_line="int f{i}(int a, int b) {{\n  int x = a + b;\n  return x * {i};\n}}\n\n",
        broken_line="int x = foo(1,;\n",
    ),
    Case(
        "cpp",
        prefix="int add(int a, int b) {\n  return ",
        suffix=";\n}\n",
        expression="std::max(a, b)",
        call_prefix="int main() {\n  std::cout << add(1, ",
        call_suffix=");\n}\n",
        filler_line="int f{i}(int a, int b) {{\n  std::vector<int> v{{a, b}};\n  return v[0] * {i};\n}}\n\n",
        broken_line="class Broken { int = 5; };\n",
    ),
]

BY_LANGUAGE = {case.language: case for case in CASES}


def filler(case: Case, lines: int = 200) -> str:
    """About `lines` lines of valid code in the case's language."""
    out, i = [], 0
    while sum(chunk.count("\n") for chunk in out) < lines:
        out.append(case.filler_line.format(i=i))
        i += 1
    return "".join(out)


def broken_far_away(case: Case) -> str:
    """A prefix whose first line is broken, ~200 valid lines before the cursor."""
    return case.header + case.broken_line + filler(case) + case.prefix


def with_header(case: Case, prefix: str) -> str:
    return case.header + prefix
