//! `grep -E` patterns for `autodetect_serial=setconsole=RE` (consoles.rs):
//! POSIX extended regular expressions, matched against short lines of
//! `/sys/class/dmi/id/modalias`.
//!
//! Small on purpose: a regex crate was about 27 kB of the static init for
//! this one option. The pattern is parsed into a program for a Thompson
//! NFA simulated over all states at once (Pike's VM without captures), so
//! matching is linear in the text times the program, whatever the pattern:
//! no backtracking blow-up. Programs are capped at [`MAX_PROGRAM`]
//! instructions and bounds at [`MAX_REPEAT`] (POSIX's `RE_DUP_MAX`).
//!
//! Supported: literals, `.`, `[...]` with ranges, `^` negation and the
//! POSIX classes (`[:alpha:]`, ...), `( )`, `|`, `*`, `+`, `?`, `{m}`,
//! `{m,}`, `{m,n}`, `^` and `$` anchors, `\` before any character for the
//! character itself, and the ASCII shorthands `\d \D \w \W \s \S \b \B` as
//! musl's regcomp (busybox `grep -E` on Alpine) accepts them.

/// The most instructions a pattern may compile to.
pub const MAX_PROGRAM: usize = 10_000;
/// The largest bound of `{m,n}`.
pub const MAX_REPEAT: u32 = 255;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EreError {
    #[error("unmatched ( at offset {0}")]
    UnclosedGroup(usize),
    #[error("unmatched ) at offset {0}")]
    UnopenedGroup(usize),
    #[error("unterminated bracket expression starting at offset {0}")]
    UnclosedBracket(usize),
    #[error("unknown character class [:{0}:]")]
    UnknownClass(String),
    #[error("range {0}-{1} is out of order")]
    BadRange(char, char),
    #[error("{0} at offset {1} has nothing to repeat")]
    NothingToRepeat(char, usize),
    #[error(
        "invalid repetition bound at offset {0} (want {{m}}, {{m,}} or {{m,n}} with m <= n <= 255)"
    )]
    BadBound(usize),
    #[error("trailing backslash")]
    TrailingBackslash,
    #[error("pattern too large (more than {MAX_PROGRAM} instructions)")]
    TooLarge,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Ere {
    program: Vec<Inst>,
}

#[derive(Debug, Clone)]
enum Inst {
    Char(char),
    Any,
    Set(Set),
    Look(Look),
    Split(usize, usize),
    Jump(usize),
    Match,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Start,
    End,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    Alpha,
    Digit,
    Alnum,
    Upper,
    Lower,
    Space,
    Blank,
    Punct,
    Print,
    Graph,
    Cntrl,
    Xdigit,
    Word,
}

impl Named {
    fn from_name(name: &str) -> Option<Named> {
        Some(match name {
            "alpha" => Named::Alpha,
            "digit" => Named::Digit,
            "alnum" => Named::Alnum,
            "upper" => Named::Upper,
            "lower" => Named::Lower,
            "space" => Named::Space,
            "blank" => Named::Blank,
            "punct" => Named::Punct,
            "print" => Named::Print,
            "graph" => Named::Graph,
            "cntrl" => Named::Cntrl,
            "xdigit" => Named::Xdigit,
            _ => return None,
        })
    }

    fn contains(self, c: char) -> bool {
        match self {
            Named::Alpha => c.is_ascii_alphabetic(),
            Named::Digit => c.is_ascii_digit(),
            Named::Alnum => c.is_ascii_alphanumeric(),
            Named::Upper => c.is_ascii_uppercase(),
            Named::Lower => c.is_ascii_lowercase(),
            Named::Space => c.is_ascii_whitespace() || c == '\x0b',
            Named::Blank => c == ' ' || c == '\t',
            Named::Punct => c.is_ascii_punctuation(),
            Named::Print => c.is_ascii_graphic() || c == ' ',
            Named::Graph => c.is_ascii_graphic(),
            Named::Cntrl => c.is_ascii_control(),
            Named::Xdigit => c.is_ascii_hexdigit(),
            Named::Word => is_word(c),
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A bracket expression or a `\d`-style shorthand.
#[derive(Debug, Clone, Default)]
struct Set {
    negated: bool,
    ranges: Vec<(char, char)>,
    named: Vec<Named>,
}

impl Set {
    fn shorthand(named: Named, negated: bool) -> Set {
        Set {
            negated,
            ranges: Vec::new(),
            named: vec![named],
        }
    }

    fn contains(&self, c: char) -> bool {
        let hit = self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
            || self.named.iter().any(|n| n.contains(c));
        hit != self.negated
    }
}

/// The parsed pattern, before compiling.
#[derive(Debug, Clone)]
enum Node {
    Empty,
    Char(char),
    Any,
    Set(Set),
    Look(Look),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// alternation := concat ('|' concat)*
    fn alternation(&mut self, depth_open: Option<usize>) -> Result<Node, EreError> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concat()?);
        }
        match self.peek() {
            Some(')') if depth_open.is_none() => return Err(EreError::UnopenedGroup(self.pos)),
            None if depth_open.is_some() => {
                return Err(EreError::UnclosedGroup(depth_open.unwrap_or(0)))
            }
            _ => {}
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    /// concat := (atom quantifier*)*
    fn concat(&mut self) -> Result<Node, EreError> {
        let mut items: Vec<Node> = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let at = self.pos;
            self.pos += 1;
            let atom = match c {
                '(' => {
                    let inner = self.alternation(Some(at))?;
                    // alternation() stopped at ')' (it errs at the end of the pattern).
                    self.pos += 1;
                    inner
                }
                '*' | '+' | '?' | '{' => return Err(EreError::NothingToRepeat(c, at)),
                '.' => Node::Any,
                '^' => Node::Look(Look::Start),
                '$' => Node::Look(Look::End),
                '[' => Node::Set(self.bracket(at)?),
                '\\' => self.escape()?,
                c => Node::Char(c),
            };
            items.push(self.quantifiers(atom)?);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    fn quantifiers(&mut self, mut atom: Node) -> Result<Node, EreError> {
        loop {
            let at = self.pos;
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    self.pos += 1;
                    self.bound(at)?
                }
                _ => return Ok(atom),
            };
            // `*`, `+` and `?` are still under the cursor; `bound` read past `}`.
            if at == self.pos {
                self.pos += 1;
            }
            atom = Node::Repeat {
                node: Box::new(atom),
                min,
                max,
            };
        }
    }

    /// The rest of `{m}`, `{m,}` or `{m,n}` after the `{` at `at`.
    fn bound(&mut self, at: usize) -> Result<(u32, Option<u32>), EreError> {
        let bad = EreError::BadBound(at);
        let min = self.number().ok_or(bad.clone())?;
        let max = match self.next() {
            Some('}') => return Ok((min, Some(min))),
            Some(',') if self.peek() == Some('}') => None,
            Some(',') => Some(self.number().ok_or(bad.clone())?),
            _ => return Err(bad),
        };
        if self.next() != Some('}') || max.is_some_and(|m| m < min) {
            return Err(bad);
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        let mut n: u32 = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            n = n.checked_mul(10)?.checked_add(d)?;
            self.pos += 1;
        }
        (self.pos > start && n <= MAX_REPEAT).then_some(n)
    }

    fn escape(&mut self) -> Result<Node, EreError> {
        let c = self.next().ok_or(EreError::TrailingBackslash)?;
        Ok(match c {
            'd' => Node::Set(Set::shorthand(Named::Digit, false)),
            'D' => Node::Set(Set::shorthand(Named::Digit, true)),
            'w' => Node::Set(Set::shorthand(Named::Word, false)),
            'W' => Node::Set(Set::shorthand(Named::Word, true)),
            's' => Node::Set(Set::shorthand(Named::Space, false)),
            'S' => Node::Set(Set::shorthand(Named::Space, true)),
            'b' => Node::Look(Look::WordBoundary),
            'B' => Node::Look(Look::NotWordBoundary),
            'n' => Node::Char('\n'),
            't' => Node::Char('\t'),
            c => Node::Char(c),
        })
    }

    /// A bracket expression after the `[` at `at`: `]` first is a literal,
    /// `-` first or last is a literal.
    fn bracket(&mut self, at: usize) -> Result<Set, EreError> {
        let unclosed = EreError::UnclosedBracket(at);
        let mut set = Set::default();
        if self.peek() == Some('^') {
            set.negated = true;
            self.pos += 1;
        }
        let mut first = true;
        loop {
            let c = self.next().ok_or(unclosed.clone())?;
            if c == ']' && !first {
                return Ok(set);
            }
            first = false;
            if c == '[' && self.peek() == Some(':') {
                let rest: String = self.chars[self.pos + 1..].iter().collect();
                let Some(end) = rest.find(":]") else {
                    return Err(unclosed);
                };
                let name = &rest[..end];
                let named =
                    Named::from_name(name).ok_or_else(|| EreError::UnknownClass(name.into()))?;
                set.named.push(named);
                self.pos += 1 + name.chars().count() + 2;
                continue;
            }
            let lo = c;
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let hi = self.next().ok_or(unclosed.clone())?;
                if hi < lo {
                    return Err(EreError::BadRange(lo, hi));
                }
                set.ranges.push((lo, hi));
            } else {
                set.ranges.push((lo, lo));
            }
        }
    }
}

struct Compiler {
    program: Vec<Inst>,
}

impl Compiler {
    fn push(&mut self, inst: Inst) -> Result<usize, EreError> {
        if self.program.len() >= MAX_PROGRAM {
            return Err(EreError::TooLarge);
        }
        self.program.push(inst);
        Ok(self.program.len() - 1)
    }

    fn node(&mut self, node: &Node) -> Result<(), EreError> {
        match node {
            Node::Empty => {}
            Node::Char(c) => {
                self.push(Inst::Char(*c))?;
            }
            Node::Any => {
                self.push(Inst::Any)?;
            }
            Node::Set(set) => {
                self.push(Inst::Set(set.clone()))?;
            }
            Node::Look(look) => {
                self.push(Inst::Look(*look))?;
            }
            Node::Concat(items) => {
                for item in items {
                    self.node(item)?;
                }
            }
            Node::Alt(branches) => {
                // split L1, next; L1: branch; jump end; next: split ...
                let mut jumps = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    if i + 1 < branches.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.node(branch)?;
                        jumps.push(self.push(Inst::Jump(0))?);
                        let next = self.program.len();
                        self.program[split] = Inst::Split(split + 1, next);
                    } else {
                        self.node(branch)?;
                    }
                }
                let end = self.program.len();
                for j in jumps {
                    self.program[j] = Inst::Jump(end);
                }
            }
            Node::Repeat { node, min, max } => {
                for _ in 0..*min {
                    self.node(node)?;
                }
                match max {
                    None => {
                        // L: split body, end; body; jump L; end:
                        let split = self.push(Inst::Split(0, 0))?;
                        self.node(node)?;
                        self.push(Inst::Jump(split))?;
                        let end = self.program.len();
                        self.program[split] = Inst::Split(split + 1, end);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.node(node)?;
                        }
                        let end = self.program.len();
                        for s in splits {
                            self.program[s] = Inst::Split(s + 1, end);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Ere {
    pub fn new(pattern: &str) -> Result<Ere, EreError> {
        let mut parser = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let node = parser.alternation(None)?;
        let mut compiler = Compiler {
            program: Vec::new(),
        };
        compiler.node(&node)?;
        compiler.push(Inst::Match)?;
        Ok(Ere {
            program: compiler.program,
        })
    }

    /// Whether the pattern matches anywhere in `text` (one line, as grep
    /// matches each line).
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.program.len();
        // `seen[pc] == stamp` marks pc as in the current list.
        let mut seen = vec![usize::MAX; n];
        let mut current: Vec<usize> = Vec::with_capacity(n);
        let mut next: Vec<usize> = Vec::with_capacity(n);
        let mut stack: Vec<usize> = Vec::new();
        for pos in 0..=chars.len() {
            // A new thread starts at every position: the search is unanchored.
            if self.add(0, pos, &chars, &mut current, &mut seen, &mut stack) {
                return true;
            }
            let Some(&c) = chars.get(pos) else { break };
            next.clear();
            for &pc in &current {
                let step = match &self.program[pc] {
                    Inst::Char(want) => *want == c,
                    Inst::Any => true,
                    Inst::Set(set) => set.contains(c),
                    _ => false,
                };
                if step && self.add(pc + 1, pos + 1, &chars, &mut next, &mut seen, &mut stack) {
                    return true;
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        false
    }

    /// Adds `pc` and everything reachable from it without consuming a
    /// character at `pos` to `list`; true when that reaches `Match`.
    fn add(
        &self,
        pc: usize,
        pos: usize,
        chars: &[char],
        list: &mut Vec<usize>,
        seen: &mut [usize],
        stack: &mut Vec<usize>,
    ) -> bool {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if seen[pc] == pos {
                continue;
            }
            seen[pc] = pos;
            match &self.program[pc] {
                Inst::Match => return true,
                Inst::Jump(to) => stack.push(*to),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Look(look) => {
                    if self.look(*look, pos, chars) {
                        stack.push(pc + 1);
                    }
                }
                Inst::Char(_) | Inst::Any | Inst::Set(_) => list.push(pc),
            }
        }
        false
    }

    fn look(&self, look: Look, pos: usize, chars: &[char]) -> bool {
        let before = pos
            .checked_sub(1)
            .and_then(|p| chars.get(p))
            .is_some_and(|&c| is_word(c));
        let after = chars.get(pos).is_some_and(|&c| is_word(c));
        match look {
            Look::Start => pos == 0,
            Look::End => pos == chars.len(),
            Look::WordBoundary => before != after,
            Look::NotWordBoundary => before == after,
        }
    }
}

#[cfg(test)]
#[path = "ere_tests.rs"]
mod tests;
