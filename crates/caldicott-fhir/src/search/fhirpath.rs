//! The subset of FHIRPath that the FHIR R4 search-parameter expressions use, evaluated over
//! `serde_json::Value` with the FHIR type of every node tracked from the generated
//! [`definitions`].
//!
//! [`compile`] parses an expression once into an [`Expr`]; [`evaluate`] runs it over one
//! resource and returns the [`Node`]s it selects, each with its FHIR type (`CodeableConcept`,
//! `Reference`, `dateTime`, `BackboneElement`...). An element whose JSON is an array gives
//! one node per item. [`compiled_params`] holds the compiled expressions of every search
//! parameter of a resource type, compiled on first use and kept for the life of the process.
//!
//! # What is supported
//!
//! - paths from the resource type (`Observation.code`; `Resource.id` applies to every
//!   resource), with choice elements resolved to whichever JSON key is present
//!   (`Observation.value` finds `valueQuantity` and gives a node of type `Quantity`), nested
//!   backbone elements, recursive elements (`Questionnaire.item.item`) and inline resources
//!   (`Bundle.entry.resource`, typed by their `resourceType`);
//! - `|` (union, without duplicates), parentheses, indexers with an integer literal (`[0]`);
//! - `=` and `!=` (JSON-value equality, numbers compared as numbers), `and`, `or`, `xor`,
//!   `implies` with FHIRPath's three-valued logic;
//! - `is T` / `as T` and the functions `is(T)`, `as(T)`, `ofType(T)`, where `T` is a FHIR type
//!   (`Quantity`, `Patient`, `dateTime`; `FHIR.` prefix allowed) or a FHIRPath system type
//!   (`DateTime`, `String`...; `System.` prefix allowed). A type matches its subtypes
//!   (`Age` is a `Quantity`, `Patient` a `Resource`). `as` filters like `ofType` rather than
//!   failing on a collection: R4 wrote `(X as T)` where it meant `X.ofType(T)`;
//! - `where(criteria)`, `exists()`, `exists(criteria)`, `empty()`, `not()`, `first()`,
//!   `last()`, `tail()`, `count()`, `extension('url')`, `resolve()`;
//! - string, number and boolean literals, `{}`, `$this`, `%resource`/`%rootResource` (the
//!   resource) and `%context` (where the evaluation started).
//!
//! `resolve()` fetches nothing. For a reference to a contained resource (`#id`) it gives the
//! contained resource itself. Otherwise it gives a stand-in node whose type is the resource
//! type the reference names (from `Reference.type`, or from a `Type/id` reference, relative
//! or an absolute URL ending `.../Type/id[/_history/n]`) and which has no elements: `resolve()
//! is Patient` works, `resolve().name` is an error ([`FhirPathError::Unresolved`]). A
//! reference naming no type resolves to nothing.
//!
//! Anything else (arithmetic, comparison and membership operators, date/time and quantity
//! literals, other functions and variables) is refused by [`compile`] with an explicit error;
//! nothing unsupported silently evaluates to an empty result. Extensions and ids of
//! primitive values (held in JSON under `_name`) are not reachable: asking for them is an
//! error at evaluation.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{LazyLock, OnceLock};

use serde_json::Value;

use crate::definitions::{self, RESOURCE_TYPES, SearchParamDef, TypeKind};

/// Why an expression cannot be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FhirPathError {
    /// The expression is not well-formed FHIRPath.
    #[error("FHIRPath syntax error at offset {pos}: {message}")]
    Syntax { pos: usize, message: String },
    /// A well-formed construct this engine does not implement.
    #[error("FHIRPath {0} is not supported")]
    Unsupported(String),
    /// A call with the wrong arguments.
    #[error("FHIRPath function {function}(): {message}")]
    Arguments {
        function: String,
        message: &'static str,
    },
    /// A type name that is neither a FHIR type nor a FHIRPath system type.
    #[error("unknown type {0}")]
    UnknownType(String),
    /// The expression nests deeper, or is longer, than this engine allows.
    #[error("FHIRPath expression nested too deeply or too long")]
    TooDeep,
    /// An operator that needs one item got several.
    #[error("{0} expects at most one item, found several")]
    NotSingleton(&'static str),
    /// Navigation into the stand-in that `resolve()` gives: references are not fetched.
    #[error("cannot navigate into the result of resolve(): references are not fetched")]
    Unresolved,
    /// Found by [`result_types`]: navigation to an element the definitions do not have.
    #[error("{scope} has no element {name}")]
    UnknownElement { scope: String, name: String },
    /// The result contains a literal (`'abc'`, `3`), which is no node of the resource.
    #[error("a FHIRPath literal cannot be a result node")]
    LiteralResult,
    /// The input given to [`evaluate`] is not a resource of a known R4 type.
    #[error("not a FHIR R4 resource (resourceType missing or unknown)")]
    NotAResource,
}

type Result<T, E = FhirPathError> = std::result::Result<T, E>;

/// One node that an expression selects: a part of the resource and its FHIR type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node<'a> {
    /// The JSON of the node: for an array element, one item of the array.
    pub value: &'a Value,
    /// The FHIR type: `CodeableConcept`, `Reference`, `dateTime`, `HumanName`, `Patient`,
    /// `BackboneElement` (or `Element`) for a nested element of a resource (datatype). For
    /// the results of a boolean expression (`Patient.deceased.exists() and ...`), `boolean`
    /// with a static JSON `true`/`false` as value.
    pub fhir_type: &'static str,
    /// Where the node's own elements are defined: the type (`HumanName`, `Patient`;
    /// `Quantity` for `SimpleQuantity`), or for a nested element its path in the definitions
    /// (`Observation.component`, `Questionnaire.item`). Empty for the stand-in that
    /// `resolve()` gives for a resource it cannot reach ([`Node::is_unresolved`]).
    pub path: &'static str,
}

impl Node<'_> {
    /// Whether this is the stand-in `resolve()` gives for a referenced resource: its type is
    /// the type the reference names, its value the reference itself, and it has no elements.
    pub fn is_unresolved(&self) -> bool {
        self.path.is_empty()
    }
}

/// The root node of a resource: its type from `resourceType`.
pub fn resource_node(resource: &Value) -> Option<Node<'_>> {
    let name = resource.get("resourceType")?.as_str()?;
    let ty = static_resource_type(name)?;
    Some(Node {
        value: resource,
        fhir_type: ty,
        path: ty,
    })
}

/// A compiled FHIRPath expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    ast: Ast,
    source: Box<str>,
}

impl Expr {
    /// The expression's text as compiled.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Parses an expression. Every construct is checked here (functions, their arguments, type
/// names), so evaluation only fails on data (a collection where one item was expected, a
/// navigation into an unresolved reference).
pub fn compile(expr: &str) -> Result<Expr> {
    let tokens = lex(expr)?;
    if tokens.len() > MAX_TOKENS {
        // Chains (`a.b.c...`, `a | b | ...`) nest the tree without nesting the parser: the
        // length bounds `ast_depth`'s recursion, and the depth check below evaluation's.
        return Err(FhirPathError::TooDeep);
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end: expr.len(),
    };
    let ast = p.expression(0)?;
    if let Some((tok, pos)) = p.tokens.get(p.pos) {
        return Err(syntax(*pos, format!("unexpected {}", tok.describe())));
    }
    if ast_depth(&ast) > MAX_DEPTH {
        return Err(FhirPathError::TooDeep);
    }
    Ok(Expr {
        ast,
        source: expr.into(),
    })
}

/// Evaluates `expr` over a resource (its type from `resourceType`).
pub fn evaluate<'a>(expr: &Expr, resource: &'a Value) -> Result<Vec<Node<'a>>> {
    let root = resource_node(resource).ok_or(FhirPathError::NotAResource)?;
    evaluate_at(expr, root, root)
}

/// Evaluates `expr` with `context` as its starting point (`%context`, and the input of the
/// expression's first step): how the components of a composite search parameter are
/// evaluated on each node its expression selects. `%resource` is `resource`.
pub fn evaluate_from<'a>(
    expr: &Expr,
    resource: &'a Value,
    context: Node<'a>,
) -> Result<Vec<Node<'a>>> {
    let root = resource_node(resource).ok_or(FhirPathError::NotAResource)?;
    evaluate_at(expr, root, context)
}

/// [`evaluate_from`] with the resource's root node already known.
pub(crate) fn evaluate_at<'a>(
    expr: &Expr,
    root: Node<'a>,
    context: Node<'a>,
) -> Result<Vec<Node<'a>>> {
    let env = Env {
        resource: root,
        context,
    };
    let items = env.eval(&expr.ast, &[Item::Node(context)])?;
    items
        .into_iter()
        .map(|item| match item {
            Item::Node(n) => Ok(n),
            Item::Bool(b) => Ok(Node {
                value: if b { &TRUE } else { &FALSE },
                fhir_type: "boolean",
                path: "boolean",
            }),
            Item::Str(_) | Item::Num(_) | Item::Int(_) => Err(FhirPathError::LiteralResult),
        })
        .collect()
}

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

// ---------------------------------------------------------------------------------------
// Compiled search parameters.

/// The compiled expressions of one search parameter of one resource type.
#[derive(Debug)]
pub struct CompiledParam {
    pub def: &'static SearchParamDef,
    /// `None` for a parameter without expression (`_text`, `_content`, ...).
    pub expr: Option<Result<Expr>>,
    /// For a composite parameter, its components' expressions, in order (relative to each
    /// node the parameter's own expression selects).
    pub components: Vec<Result<Expr>>,
}

const N_TYPES: usize = RESOURCE_TYPES.len();
static PLANS: [OnceLock<Vec<CompiledParam>>; N_TYPES] = [const { OnceLock::new() }; N_TYPES];

/// Every search parameter of `resource_type` (in [`definitions::search_params`] order) with
/// its expressions compiled: compiled on the first call for that type, then shared. Empty
/// for an unknown type.
pub fn compiled_params(resource_type: &str) -> &'static [CompiledParam] {
    let Ok(i) = RESOURCE_TYPES.binary_search(&resource_type) else {
        return &[];
    };
    let Some(slot) = PLANS.get(i) else {
        return &[];
    };
    slot.get_or_init(|| {
        definitions::search_params(resource_type)
            .map(|def| CompiledParam {
                def,
                expr: def.expression.map(compile),
                components: def
                    .components
                    .iter()
                    .map(|c| compile(c.expression))
                    .collect(),
            })
            .collect()
    })
}

/// One compiled search parameter (`_id` and the other common ones included).
pub fn compiled_param(resource_type: &str, code: &str) -> Option<&'static CompiledParam> {
    compiled_params(resource_type)
        .iter()
        .find(|p| p.def.code == code)
}

// ---------------------------------------------------------------------------------------
// Lexer.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A backtick-delimited identifier: never a keyword.
    Delimited(String),
    Str(String),
    Num(String),
    /// `%name`
    Var(String),
    /// `$name`
    Special(String),
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Op(&'static str),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Delimited(s) => format!("identifier {s}"),
            Tok::Str(_) => "string literal".into(),
            Tok::Num(n) => format!("number {n}"),
            Tok::Var(v) => format!("%{v}"),
            Tok::Special(v) => format!("${v}"),
            Tok::Dot => "'.'".into(),
            Tok::Comma => "','".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::Op(o) => format!("'{o}'"),
        }
    }
}

fn syntax(pos: usize, message: impl Into<String>) -> FhirPathError {
    FhirPathError::Syntax {
        pos,
        message: message.into(),
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while b.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let rest = src.get(i + 2..).unwrap_or("");
                let end = rest
                    .find("*/")
                    .ok_or_else(|| syntax(start, "unterminated comment"))?;
                i += 2 + end + 2;
                continue;
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                let name = ident_at(src, i);
                i += name.len();
                out.push((Tok::Ident(name.to_owned()), start));
            }
            b'`' => {
                let (name, len) = delimited(src, i, b'`')?;
                i += len;
                out.push((Tok::Delimited(name), start));
            }
            b'\'' => {
                let (s, len) = delimited(src, i, b'\'')?;
                i += len;
                out.push((Tok::Str(s), start));
            }
            b'0'..=b'9' => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while b.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                }
                if b.get(i)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'\'')
                {
                    return Err(FhirPathError::Unsupported(
                        "quantity literals (a number with a unit)".into(),
                    ));
                }
                out.push((Tok::Num(src.get(start..i).unwrap_or("").to_owned()), start));
            }
            b'%' | b'$' => {
                i += 1;
                let name = match b.get(i) {
                    Some(b'`' | b'\'') if c == b'%' => {
                        let quote = b.get(i).copied().unwrap_or(b'`');
                        let (name, len) = delimited(src, i, quote)?;
                        i += len;
                        name
                    }
                    Some(d) if d.is_ascii_alphabetic() || *d == b'_' => {
                        let name = ident_at(src, i);
                        i += name.len();
                        name.to_owned()
                    }
                    _ => {
                        return Err(syntax(
                            start,
                            format!("expected a name after {}", c as char),
                        ));
                    }
                };
                out.push((
                    if c == b'%' {
                        Tok::Var(name)
                    } else {
                        Tok::Special(name)
                    },
                    start,
                ));
            }
            b'@' => {
                return Err(FhirPathError::Unsupported("date/time literals".into()));
            }
            _ => {
                let two = b.get(i + 1).copied();
                let (tok, len) = match (c, two) {
                    (b'.', _) => (Tok::Dot, 1),
                    (b',', _) => (Tok::Comma, 1),
                    (b'(', _) => (Tok::LParen, 1),
                    (b')', _) => (Tok::RParen, 1),
                    (b'[', _) => (Tok::LBracket, 1),
                    (b']', _) => (Tok::RBracket, 1),
                    (b'{', _) => (Tok::LBrace, 1),
                    (b'}', _) => (Tok::RBrace, 1),
                    (b'!', Some(b'=')) => (Tok::Op("!="), 2),
                    (b'!', Some(b'~')) => (Tok::Op("!~"), 2),
                    (b'<', Some(b'=')) => (Tok::Op("<="), 2),
                    (b'>', Some(b'=')) => (Tok::Op(">="), 2),
                    (b'|', _) => (Tok::Op("|"), 1),
                    (b'=', _) => (Tok::Op("="), 1),
                    (b'~', _) => (Tok::Op("~"), 1),
                    (b'<', _) => (Tok::Op("<"), 1),
                    (b'>', _) => (Tok::Op(">"), 1),
                    (b'+', _) => (Tok::Op("+"), 1),
                    (b'-', _) => (Tok::Op("-"), 1),
                    (b'*', _) => (Tok::Op("*"), 1),
                    (b'/', _) => (Tok::Op("/"), 1),
                    (b'&', _) => (Tok::Op("&"), 1),
                    _ => {
                        let ch = src.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                        return Err(syntax(start, format!("unexpected character {ch:?}")));
                    }
                };
                i += len;
                out.push((tok, start));
            }
        }
    }
    Ok(out)
}

fn ident_at(src: &str, i: usize) -> &str {
    let rest = src.get(i..).unwrap_or("");
    let len = rest
        .bytes()
        .position(|c| !(c.is_ascii_alphanumeric() || c == b'_'))
        .unwrap_or(rest.len());
    rest.get(..len).unwrap_or("")
}

/// A quoted string or delimited identifier starting at `i` (the quote): its unescaped text
/// and its length in the source, quotes included.
fn delimited(src: &str, i: usize, quote: u8) -> Result<(String, usize)> {
    let rest = src.get(i + 1..).unwrap_or("");
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((j, c)) = chars.next() {
        match c {
            c if c as u32 == u32::from(quote) => return Ok((out, j + 2)),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    '\'' | '"' | '`' | '\\' | '/' => out.push(e),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let digit = chars
                                .next()
                                .and_then(|(_, h)| h.to_digit(16))
                                .ok_or_else(|| syntax(i, "bad \\u escape"))?;
                            code = code * 16 + digit;
                        }
                        out.push(char::from_u32(code).ok_or_else(|| syntax(i, "bad \\u escape"))?);
                    }
                    _ => return Err(syntax(i, format!("unknown escape \\{e}"))),
                }
            }
            c => out.push(c),
        }
    }
    Err(syntax(i, "unterminated string or identifier"))
}

// ---------------------------------------------------------------------------------------
// Syntax tree and parser.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SystemType {
    Boolean,
    String,
    Integer,
    Decimal,
    Date,
    DateTime,
    Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeSpec {
    Fhir(&'static str),
    System(SystemType),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logic {
    And,
    Or,
    Xor,
    Implies,
}

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Where(Box<Ast>),
    Exists(Option<Box<Ast>>),
    Empty,
    Not,
    First,
    Last,
    Tail,
    Count,
    Resolve,
    OfType(TypeSpec),
    Is(TypeSpec),
    Extension(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Ast {
    /// The input of the current term: the starting node, or the item `where(...)` tests.
    Focus,
    /// `%resource`.
    Resource,
    /// `%context`.
    Context,
    /// `{}`.
    Nothing,
    Str(String),
    Num(String),
    Bool(bool),
    Member(Box<Ast>, String, MemberCache),
    Index(Box<Ast>, usize),
    Call(Box<Ast>, Call),
    Union(Box<Ast>, Box<Ast>),
    /// `=` (false) or `!=` (true).
    Equal(Box<Ast>, Box<Ast>, bool),
    Logic(Logic, Box<Ast>, Box<Ast>),
}

/// The deepest syntax tree accepted (the R4 search expressions stay under 10), which bounds
/// the recursion of evaluation.
const MAX_DEPTH: usize = 64;
/// The longest R4 search expression has fewer than 100 tokens.
const MAX_TOKENS: usize = 1000;

/// The depth of a syntax tree. Its recursion is bounded by [`MAX_TOKENS`].
fn ast_depth(ast: &Ast) -> usize {
    1 + match ast {
        Ast::Focus
        | Ast::Resource
        | Ast::Context
        | Ast::Nothing
        | Ast::Str(_)
        | Ast::Num(_)
        | Ast::Bool(_) => 0,
        Ast::Member(input, ..) | Ast::Index(input, _) => ast_depth(input),
        Ast::Call(input, call) => {
            let arg = match call {
                Call::Where(c) | Call::Exists(Some(c)) => ast_depth(c),
                _ => 0,
            };
            ast_depth(input).max(arg)
        }
        Ast::Union(l, r) | Ast::Equal(l, r, _) | Ast::Logic(_, l, r) => {
            ast_depth(l).max(ast_depth(r))
        }
    }
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
    end: usize,
}

/// Binary operators: (precedence, higher binds tighter).
fn binary_op(tok: &Tok) -> Option<(&'static str, u8)> {
    Some(match tok {
        Tok::Ident(w) => match w.as_str() {
            "implies" => ("implies", 1),
            "or" => ("or", 2),
            "xor" => ("xor", 2),
            "and" => ("and", 3),
            "in" => ("in", 4),
            "contains" => ("contains", 4),
            "is" => ("is", 8),
            "as" => ("as", 8),
            "div" => ("div", 10),
            "mod" => ("mod", 10),
            _ => return None,
        },
        Tok::Op(o) => match *o {
            "=" | "!=" | "~" | "!~" => (*o, 5),
            "<" | ">" | "<=" | ">=" => (*o, 6),
            "|" => ("|", 7),
            "+" | "-" | "&" => (*o, 9),
            "*" | "/" => (*o, 10),
            _ => return None,
        },
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn here(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(_, p)| *p)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|(t, _)| t.clone());
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn expect(&mut self, want: &Tok) -> Result<()> {
        let pos = self.here();
        match self.next() {
            Some(t) if &t == want => Ok(()),
            Some(t) => Err(syntax(
                pos,
                format!("expected {}, found {}", want.describe(), t.describe()),
            )),
            None => Err(syntax(
                pos,
                format!("expected {}, found the end", want.describe()),
            )),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(FhirPathError::TooDeep)
        } else {
            Ok(())
        }
    }

    fn expression(&mut self, min_prec: u8) -> Result<Ast> {
        self.enter()?;
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.peek().and_then(binary_op) {
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            lhs = match op {
                "is" => Ast::Call(Box::new(lhs), Call::Is(self.type_spec()?)),
                "as" => Ast::Call(Box::new(lhs), Call::OfType(self.type_spec()?)),
                _ => {
                    // Left-associative: the right operand binds tighter.
                    let rhs = self.expression(prec + 1)?;
                    let (l, r) = (Box::new(lhs), Box::new(rhs));
                    match op {
                        "|" => Ast::Union(l, r),
                        "=" => Ast::Equal(l, r, false),
                        "!=" => Ast::Equal(l, r, true),
                        "and" => Ast::Logic(Logic::And, l, r),
                        "or" => Ast::Logic(Logic::Or, l, r),
                        "xor" => Ast::Logic(Logic::Xor, l, r),
                        "implies" => Ast::Logic(Logic::Implies, l, r),
                        other => {
                            return Err(FhirPathError::Unsupported(format!("operator {other}")));
                        }
                    }
                }
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Ast> {
        if let Some(Tok::Op(o @ ("+" | "-"))) = self.peek() {
            return Err(FhirPathError::Unsupported(format!("unary {o}")));
        }
        let mut term = self.term()?;
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    let pos = self.here();
                    let name = match self.next() {
                        Some(Tok::Ident(n) | Tok::Delimited(n)) => n,
                        Some(t) => {
                            return Err(syntax(
                                pos,
                                format!("expected a name after '.', found {}", t.describe()),
                            ));
                        }
                        None => return Err(syntax(pos, "expected a name after '.'")),
                    };
                    term = if self.peek() == Some(&Tok::LParen) {
                        self.call(term, &name)?
                    } else {
                        Ast::Member(Box::new(term), name, MemberCache::default())
                    };
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    let pos = self.here();
                    let index = match self.next() {
                        Some(Tok::Num(n)) => n.parse::<usize>().map_err(|_| {
                            syntax(pos, "an indexer must be a non-negative integer")
                        })?,
                        _ => {
                            return Err(FhirPathError::Unsupported(
                                "indexers other than an integer literal".into(),
                            ));
                        }
                    };
                    self.expect(&Tok::RBracket)?;
                    term = Ast::Index(Box::new(term), index);
                }
                _ => return Ok(term),
            }
        }
    }

    fn term(&mut self) -> Result<Ast> {
        let pos = self.here();
        let Some(tok) = self.next() else {
            return Err(syntax(pos, "expected an expression, found the end"));
        };
        Ok(match tok {
            Tok::LParen => {
                let inner = self.expression(0)?;
                self.expect(&Tok::RParen)?;
                inner
            }
            Tok::LBrace => {
                self.expect(&Tok::RBrace)?;
                Ast::Nothing
            }
            Tok::Str(s) => Ast::Str(s),
            Tok::Num(n) => {
                if matches!(self.peek(), Some(Tok::Str(_))) {
                    return Err(FhirPathError::Unsupported("quantity literals".into()));
                }
                Ast::Num(n)
            }
            Tok::Var(v) => match v.as_str() {
                "resource" | "rootResource" => Ast::Resource,
                "context" => Ast::Context,
                _ => return Err(FhirPathError::Unsupported(format!("variable %{v}"))),
            },
            Tok::Special(v) => match v.as_str() {
                "this" => Ast::Focus,
                _ => return Err(FhirPathError::Unsupported(format!("${v}"))),
            },
            Tok::Ident(name) if name == "true" => Ast::Bool(true),
            Tok::Ident(name) if name == "false" => Ast::Bool(false),
            Tok::Ident(name) | Tok::Delimited(name) => {
                if self.peek() == Some(&Tok::LParen) {
                    self.call(Ast::Focus, &name)?
                } else if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    // A path's leading type name: `Observation.code`, `Resource.id`.
                    let spec = type_name(&name)?;
                    Ast::Call(Box::new(Ast::Focus), Call::OfType(spec))
                } else {
                    Ast::Member(Box::new(Ast::Focus), name, MemberCache::default())
                }
            }
            t => return Err(syntax(pos, format!("unexpected {}", t.describe()))),
        })
    }

    /// A type specifier: `Patient`, `FHIR.Patient`, `System.DateTime`.
    fn type_spec(&mut self) -> Result<TypeSpec> {
        let pos = self.here();
        let first = match self.next() {
            Some(Tok::Ident(n) | Tok::Delimited(n)) => n,
            _ => return Err(syntax(pos, "expected a type name")),
        };
        if (first == "FHIR" || first == "System") && self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            let pos2 = self.here();
            let name = match self.next() {
                Some(Tok::Ident(n) | Tok::Delimited(n)) => n,
                _ => return Err(syntax(pos2, "expected a type name")),
            };
            return if first == "FHIR" {
                fhir_type(&name)
                    .map(TypeSpec::Fhir)
                    .ok_or(FhirPathError::UnknownType(name))
            } else {
                system_type(&name)
                    .map(TypeSpec::System)
                    .ok_or(FhirPathError::UnknownType(name))
            };
        }
        type_name(&first)
    }

    /// A function call on `input`; the current token is `(`.
    fn call(&mut self, input: Ast, name: &str) -> Result<Ast> {
        self.enter()?;
        self.expect(&Tok::LParen)?;
        let arguments = |message| FhirPathError::Arguments {
            function: name.to_owned(),
            message,
        };
        let no_args = |p: &mut Self, call: Call| -> Result<Call> {
            p.expect(&Tok::RParen)
                .map_err(|_| arguments("takes no arguments"))?;
            Ok(call)
        };
        let call = match name {
            "where" => {
                let crit = self.expression(0)?;
                self.expect(&Tok::RParen)
                    .map_err(|_| arguments("takes one argument"))?;
                Call::Where(Box::new(crit))
            }
            "exists" => {
                if self.peek() == Some(&Tok::RParen) {
                    self.pos += 1;
                    Call::Exists(None)
                } else {
                    let crit = self.expression(0)?;
                    self.expect(&Tok::RParen)
                        .map_err(|_| arguments("takes at most one argument"))?;
                    Call::Exists(Some(Box::new(crit)))
                }
            }
            "empty" => no_args(self, Call::Empty)?,
            "not" => no_args(self, Call::Not)?,
            "first" => no_args(self, Call::First)?,
            "last" => no_args(self, Call::Last)?,
            "tail" => no_args(self, Call::Tail)?,
            "count" => no_args(self, Call::Count)?,
            "resolve" => no_args(self, Call::Resolve)?,
            "ofType" | "as" | "is" => {
                let spec = self.type_spec()?;
                self.expect(&Tok::RParen)
                    .map_err(|_| arguments("takes one type name"))?;
                if name == "is" {
                    Call::Is(spec)
                } else {
                    Call::OfType(spec)
                }
            }
            "extension" => {
                let url = match self.next() {
                    Some(Tok::Str(s)) => s,
                    _ => return Err(arguments("takes one string literal (the url)")),
                };
                self.expect(&Tok::RParen)
                    .map_err(|_| arguments("takes one string literal (the url)"))?;
                Call::Extension(url)
            }
            _ => {
                return Err(FhirPathError::Unsupported(format!("function {name}()")));
            }
        };
        self.depth -= 1;
        Ok(Ast::Call(Box::new(input), call))
    }
}

/// An unqualified type name: a FHIR type first, then a FHIRPath system type.
fn type_name(name: &str) -> Result<TypeSpec> {
    if let Some(t) = fhir_type(name) {
        Ok(TypeSpec::Fhir(t))
    } else if let Some(s) = system_type(name) {
        Ok(TypeSpec::System(s))
    } else {
        Err(FhirPathError::UnknownType(name.to_owned()))
    }
}

/// A FHIR type's name as a `&'static str` from the definitions.
fn fhir_type(name: &str) -> Option<&'static str> {
    definitions::type_def(name).map(|t| t.name)
}

/// A concrete R4 resource type's name as a `&'static str`.
fn static_resource_type(name: &str) -> Option<&'static str> {
    TYPES
        .get(name)
        .filter(|t| t.concrete_resource)
        .map(|t| t.name)
}

fn system_type(name: &str) -> Option<SystemType> {
    Some(match name {
        "Boolean" => SystemType::Boolean,
        "String" => SystemType::String,
        "Integer" => SystemType::Integer,
        "Decimal" => SystemType::Decimal,
        "Date" => SystemType::Date,
        "DateTime" => SystemType::DateTime,
        "Time" => SystemType::Time,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Types.

/// Whether FHIR type `ty` is `target` or derives from it (`Age` is a `Quantity`, `code` a
/// `string`, `Patient` a `Resource`).
pub fn is_a(ty: &str, target: &str) -> bool {
    ty == target || TYPES.get(ty).is_some_and(|t| t.ancestors.contains(&target))
}

/// A fast, non-keyed hash (FxHash) for the static tables below, whose keys come from the
/// definitions and from compiled expressions, never from resources.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// What evaluation needs to know of a type, by name.
struct TypeInfo {
    name: &'static str,
    concrete_resource: bool,
    /// Its base, the base's base, ... (`DomainResource`, `Resource` for `Patient`).
    ancestors: Vec<&'static str>,
}

static TYPES: LazyLock<FxMap<&'static str, TypeInfo>> = LazyLock::new(|| {
    definitions::types()
        .iter()
        .map(|t| {
            let mut ancestors = Vec::new();
            let mut base = t.base;
            while let Some(b) = base {
                if ancestors.contains(&b) || ancestors.len() > 16 {
                    break;
                }
                ancestors.push(b);
                base = definitions::type_def(b).and_then(|d| d.base);
            }
            let info = TypeInfo {
                name: t.name,
                concrete_resource: definitions::is_resource_type(t.name),
                ancestors,
            };
            (t.name, info)
        })
        .collect()
});

/// Whether a FHIR type is seen by FHIRPath as the system type `s`.
fn system_is(ty: &str, s: SystemType) -> bool {
    match s {
        SystemType::Boolean => ty == "boolean",
        SystemType::String => {
            is_a(ty, "string") || is_a(ty, "uri") || ty == "base64Binary" || ty == "xhtml"
        }
        SystemType::Integer => is_a(ty, "integer"),
        SystemType::Decimal => ty == "decimal",
        SystemType::Date => ty == "date",
        SystemType::DateTime => ty == "dateTime" || ty == "instant",
        SystemType::Time => ty == "time",
    }
}

fn type_matches(ty: &str, spec: TypeSpec) -> bool {
    match spec {
        TypeSpec::Fhir(t) => is_a(ty, t),
        TypeSpec::System(s) => system_is(ty, s),
    }
}

/// Where the elements of a type are defined: its name, except for the constraining
/// profiles `SimpleQuantity` and `MoneyQuantity`, whose elements are `Quantity.*`.
fn type_path(ty: &'static str) -> &'static str {
    definitions::type_def(ty)
        .and_then(|t| t.elements.first())
        .and_then(|e| e.path.split('.').next())
        .unwrap_or(ty)
}

// ---------------------------------------------------------------------------------------
// The element index: (where an element is defined, its name) -> how to find it in JSON.

#[derive(Debug)]
enum Elem {
    /// An element with one type.
    Single {
        key: &'static str,
        ty: &'static str,
        /// Where the node's elements are defined (see [`Node::path`]); for `Resource`,
        /// replaced by the inline resource's type.
        path: &'static str,
    },
    /// A choice `name[x]`: (JSON key, type, path) for each allowed type.
    Choice(Box<[(String, &'static str, &'static str)]>),
}

static ELEMENTS: LazyLock<Elements> = LazyLock::new(|| {
    let mut by_path: HashMap<&'static str, &'static definitions::ElementDef> = HashMap::new();
    for t in definitions::types() {
        for e in t.elements {
            if e.path.split('.').next() == Some(t.name) {
                by_path.entry(e.path).or_insert(e);
            }
        }
    }
    let mut index = FxMap::default();
    let mut list = Vec::new();
    for e in by_path.values() {
        let Some((parent, name)) = e.path.rsplit_once('.') else {
            continue;
        };
        let (types, own_path) = match e.content_ref {
            Some(r) => match by_path.get(r) {
                Some(target) => (target.types, target.path),
                None => continue,
            },
            None => (e.types, e.path),
        };
        let node_path = |ty: &'static str| match ty {
            "BackboneElement" | "Element" => own_path,
            _ => type_path(ty),
        };
        let elem = if let Some(base) = name.strip_suffix("[x]") {
            let choices = types
                .iter()
                .map(|ty| {
                    let mut key = String::with_capacity(base.len() + ty.len());
                    key.push_str(base);
                    let mut chars = ty.chars();
                    if let Some(c) = chars.next() {
                        key.push(c.to_ascii_uppercase());
                        key.push_str(chars.as_str());
                    }
                    (key, *ty, node_path(ty))
                })
                .collect();
            index.insert((parent, base), list.len());
            list.push(Elem::Choice(choices));
            continue;
        } else if let [ty] = types {
            Elem::Single {
                key: name,
                ty,
                path: node_path(ty),
            }
        } else {
            continue;
        };
        index.insert((parent, name), list.len());
        list.push(elem);
    }
    Elements { index, list }
});

fn lookup(path: &str, name: &str) -> Option<&'static Elem> {
    let elements: &'static Elements = &ELEMENTS;
    // `HashMap` is covariant in its key: the static index is looked up with shorter-lived
    // keys, and gives a position in the static list.
    let index: &FxMap<(&str, &str), usize> = &elements.index;
    let i = *index.get(&(path, name))?;
    elements.list.get(i)
}

/// The element index: (where an element is defined, its name) to a position in `list`.
struct Elements {
    index: FxMap<(&'static str, &'static str), usize>,
    list: Vec<Elem>,
}

/// The element a member step found the last time, for the path it was looked up from: a
/// step almost always navigates from the same place.
#[derive(Debug, Clone, Default)]
struct MemberCache(OnceLock<(&'static str, Option<&'static Elem>)>);

impl PartialEq for MemberCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn push_json<'a>(v: &'a Value, ty: &'static str, path: &'static str, out: &mut Vec<Item<'a, '_>>) {
    let mut push = |value: &'a Value| {
        if value.is_null() {
            return;
        }
        if ty == "Resource" {
            if let Some(n) = resource_node(value) {
                out.push(Item::Node(n));
            }
        } else {
            out.push(Item::Node(Node {
                value,
                fhir_type: ty,
                path,
            }));
        }
    };
    match v {
        Value::Array(items) => items.iter().for_each(&mut push),
        v => push(v),
    }
}

/// The children named `name` of a node.
fn navigate<'a>(
    node: Node<'a>,
    name: &str,
    cache: Option<&MemberCache>,
    out: &mut Vec<Item<'a, '_>>,
) -> Result<()> {
    if node.is_unresolved() {
        return Err(FhirPathError::Unresolved);
    }
    let elem = match cache.and_then(|c| c.0.get()) {
        Some((path, elem)) if std::ptr::eq(*path, node.path) || *path == node.path => *elem,
        _ => {
            let elem = lookup(node.path, name);
            if let Some(c) = cache {
                let _ = c.0.set((node.path, elem));
            }
            elem
        }
    };
    let Some(elem) = elem else {
        if (name == "extension" || name == "id")
            && definitions::type_def(node.fhir_type).is_some_and(|t| t.kind == TypeKind::Primitive)
        {
            return Err(FhirPathError::Unsupported(format!(
                "{name} of a primitive value"
            )));
        }
        return Ok(());
    };
    let Some(obj) = node.value.as_object() else {
        return Ok(());
    };
    match elem {
        Elem::Single { key, ty, path } => {
            if let Some(v) = obj.get(*key) {
                push_json(v, ty, path, out);
            }
        }
        Elem::Choice(choices) if obj.len() < choices.len() => {
            // Fewer keys in the object than types allowed: look at the keys.
            for (k, v) in obj {
                if let Some((_, ty, path)) = choices.iter().find(|(key, ..)| key == k) {
                    push_json(v, ty, path, out);
                }
            }
        }
        Elem::Choice(choices) => {
            for (key, ty, path) in choices.iter() {
                if let Some(v) = obj.get(key.as_str()) {
                    push_json(v, ty, path, out);
                }
            }
        }
    }
    Ok(())
}

/// The resource type a reference names: `Patient` from `Patient/1`,
/// `http://x/fhir/Patient/1/_history/2`, or failing those from `type`; `None` for a
/// reference without a type (`urn:uuid:...`).
pub fn reference_type(reference: &Value) -> Option<&'static str> {
    let from_text = reference
        .get("reference")
        .and_then(Value::as_str)
        .and_then(parse_reference)
        .map(|(t, _)| t);
    from_text.or_else(|| {
        reference
            .get("type")
            .and_then(Value::as_str)
            .and_then(static_resource_type)
    })
}

/// Splits a literal reference into (resource type, id): `Patient/1`, `Patient/1/_history/2`,
/// or an absolute `http(s)` URL ending in either (`https://example.org/fhir/Patient/1`); the
/// version is dropped. `None` for contained (`#x`), `urn:` and conditional (`?`) references,
/// a bare id, and when the type is not an R4 resource type or the id not a valid FHIR id.
pub fn parse_reference(text: &str) -> Option<(&'static str, &str)> {
    if text.contains(['?', '#']) {
        return None;
    }
    let mut parts = text.rsplit('/');
    let mut id = parts.next()?;
    let mut ty = parts.next()?;
    if ty == "_history" && is_fhir_id(id) {
        id = parts.next()?;
        ty = parts.next()?;
    }
    let relative = parts.next().is_none();
    let absolute = text.starts_with("http://") || text.starts_with("https://");
    if !(relative || absolute) {
        return None;
    }
    let ty = static_resource_type(ty)?;
    is_fhir_id(id).then_some((ty, id))
}

/// Whether `s` is a FHIR id: 1-64 of `A-Z a-z 0-9 - .`.
pub fn is_fhir_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

// ---------------------------------------------------------------------------------------
// Evaluation.

/// One item of an intermediate collection.
#[derive(Debug, Clone, Copy)]
enum Item<'a, 'e> {
    Node(Node<'a>),
    Bool(bool),
    Str(&'e str),
    Num(&'e str),
    Int(i64),
}

struct Env<'a> {
    resource: Node<'a>,
    context: Node<'a>,
}

impl<'a> Env<'a> {
    fn eval<'e>(&self, ast: &'e Ast, focus: &[Item<'a, 'e>]) -> Result<Vec<Item<'a, 'e>>> {
        Ok(match ast {
            Ast::Focus => focus.to_vec(),
            Ast::Resource => vec![Item::Node(self.resource)],
            Ast::Context => vec![Item::Node(self.context)],
            Ast::Nothing => Vec::new(),
            Ast::Str(s) => vec![Item::Str(s)],
            Ast::Num(n) => vec![Item::Num(n)],
            Ast::Bool(b) => vec![Item::Bool(*b)],
            Ast::Member(input, name, cache) => {
                let mut out = Vec::new();
                let mut step = |item: &Item<'a, 'e>| match item {
                    Item::Node(n) => navigate(*n, name, Some(cache), &mut out),
                    _ => Ok(()),
                };
                match &**input {
                    // The first step of a path, without copying the input.
                    Ast::Focus => focus.iter().try_for_each(&mut step)?,
                    Ast::Call(inner, Call::OfType(spec)) if **inner == Ast::Focus => focus
                        .iter()
                        .filter(|i| item_is(i, *spec))
                        .try_for_each(&mut step)?,
                    input => self.eval(input, focus)?.iter().try_for_each(&mut step)?,
                }
                out
            }
            Ast::Index(input, i) => {
                let input = self.eval(input, focus)?;
                input.get(*i).copied().into_iter().collect()
            }
            Ast::Union(l, r) => {
                let mut out = self.eval(l, focus)?;
                let right = self.eval(r, focus)?;
                union_into(&mut out, right);
                out
            }
            Ast::Equal(l, r, negate) => {
                let l = self.eval(l, focus)?;
                let r = self.eval(r, focus)?;
                if l.is_empty() || r.is_empty() {
                    Vec::new()
                } else {
                    let eq = l.len() == r.len() && l.iter().zip(&r).all(|(a, b)| item_eq(a, b));
                    vec![Item::Bool(eq != *negate)]
                }
            }
            Ast::Logic(op, l, r) => {
                let a = to_bool(&self.eval(l, focus)?, "a boolean operator")?;
                let b = to_bool(&self.eval(r, focus)?, "a boolean operator")?;
                let v = match op {
                    Logic::And => match (a, b) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    Logic::Or => match (a, b) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    Logic::Xor => match (a, b) {
                        (Some(x), Some(y)) => Some(x != y),
                        _ => None,
                    },
                    Logic::Implies => match (a, b) {
                        (Some(false), _) | (_, Some(true)) => Some(true),
                        (Some(true), Some(false)) => Some(false),
                        _ => None,
                    },
                };
                v.map(Item::Bool).into_iter().collect()
            }
            Ast::Call(input, call) => {
                let input = self.eval(input, focus)?;
                self.call(input, call)?
            }
        })
    }

    fn call<'e>(&self, input: Vec<Item<'a, 'e>>, call: &'e Call) -> Result<Vec<Item<'a, 'e>>> {
        Ok(match call {
            Call::Where(crit) => {
                let mut out = Vec::with_capacity(input.len());
                for item in input {
                    let r = self.eval(crit, &[item])?;
                    if to_bool(&r, "where()")? == Some(true) {
                        out.push(item);
                    }
                }
                out
            }
            Call::Exists(None) => vec![Item::Bool(!input.is_empty())],
            Call::Exists(Some(crit)) => {
                let mut found = false;
                for item in input {
                    if to_bool(&self.eval(crit, &[item])?, "exists()")? == Some(true) {
                        found = true;
                        break;
                    }
                }
                vec![Item::Bool(found)]
            }
            Call::Empty => vec![Item::Bool(input.is_empty())],
            Call::Not => to_bool(&input, "not()")?
                .map(|b| Item::Bool(!b))
                .into_iter()
                .collect(),
            Call::First => input.first().copied().into_iter().collect(),
            Call::Last => input.last().copied().into_iter().collect(),
            Call::Tail => input.get(1..).unwrap_or(&[]).to_vec(),
            Call::Count => vec![Item::Int(i64::try_from(input.len()).unwrap_or(i64::MAX))],
            Call::OfType(spec) => input.into_iter().filter(|i| item_is(i, *spec)).collect(),
            Call::Is(spec) => match input.as_slice() {
                [] => Vec::new(),
                [item] => vec![Item::Bool(item_is(item, *spec))],
                _ => return Err(FhirPathError::NotSingleton("is")),
            },
            Call::Extension(url) => {
                let mut exts = Vec::new();
                for item in input {
                    if let Item::Node(n) = item {
                        navigate(n, "extension", None, &mut exts)?;
                    }
                }
                exts.retain(|e| match e {
                    Item::Node(n) => {
                        n.value.get("url").and_then(Value::as_str) == Some(url.as_str())
                    }
                    _ => false,
                });
                exts
            }
            Call::Resolve => {
                let mut out = Vec::new();
                for item in input {
                    if let Item::Node(n) = item
                        && let Some(r) = self.resolve(n)
                    {
                        out.push(Item::Node(r));
                    }
                }
                out
            }
        })
    }

    /// What `resolve()` gives for one node (see the module documentation).
    fn resolve(&self, node: Node<'a>) -> Option<Node<'a>> {
        let text = match node.value {
            Value::String(s) if is_a(node.fhir_type, "uri") => Some(s.as_str()),
            Value::Object(_) if node.fhir_type == "Reference" => {
                node.value.get("reference").and_then(Value::as_str)
            }
            _ => return None,
        };
        if let Some(local) = text.and_then(|t| t.strip_prefix('#')) {
            if local.is_empty() {
                // `#` alone is the containing resource.
                return Some(self.resource);
            }
            return self
                .resource
                .value
                .get("contained")?
                .as_array()?
                .iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(local))
                .and_then(resource_node);
        }
        let ty = match node.value {
            Value::String(s) => parse_reference(s).map(|(t, _)| t),
            v => reference_type(v),
        }?;
        Some(Node {
            value: node.value,
            fhir_type: ty,
            path: "",
        })
    }
}

fn union_into<'a, 'e>(out: &mut Vec<Item<'a, 'e>>, right: Vec<Item<'a, 'e>>) {
    let mut all = std::mem::take(out);
    all.extend(right);
    if all.len() <= 32 {
        for item in all {
            if !out.iter().any(|o| same_item(o, &item)) {
                out.push(item);
            }
        }
        return;
    }
    // Large collections: nodes by identity through a hash set, so a union stays linear.
    let mut seen = std::collections::HashSet::with_capacity(all.len());
    for item in all {
        let fresh = match item {
            Item::Node(n) => seen.insert((std::ptr::from_ref(n.value) as usize, n.fhir_type)),
            _ => !out.iter().any(|o| same_item(o, &item)),
        };
        if fresh {
            out.push(item);
        }
    }
}

/// Identity for union: the same part of the resource with the same type, or equal
/// literals.
fn same_item(a: &Item<'_, '_>, b: &Item<'_, '_>) -> bool {
    match (a, b) {
        (Item::Node(x), Item::Node(y)) => {
            std::ptr::eq(x.value, y.value) && x.fhir_type == y.fhir_type
        }
        (Item::Node(_), _) | (_, Item::Node(_)) => false,
        _ => item_eq(a, b),
    }
}

fn item_is(item: &Item<'_, '_>, spec: TypeSpec) -> bool {
    match item {
        Item::Node(n) => type_matches(n.fhir_type, spec),
        Item::Bool(_) => spec == TypeSpec::System(SystemType::Boolean),
        Item::Str(_) => spec == TypeSpec::System(SystemType::String),
        Item::Int(_) => spec == TypeSpec::System(SystemType::Integer),
        Item::Num(n) => {
            spec == TypeSpec::System(if n.contains('.') {
                SystemType::Decimal
            } else {
                SystemType::Integer
            })
        }
    }
}

/// FHIRPath singleton evaluation of a collection as a boolean.
fn to_bool(items: &[Item<'_, '_>], what: &'static str) -> Result<Option<bool>> {
    match items {
        [] => Ok(None),
        [Item::Bool(b)] => Ok(Some(*b)),
        [Item::Node(n)] => Ok(Some(n.value.as_bool().unwrap_or(true))),
        [_] => Ok(Some(true)),
        _ => Err(FhirPathError::NotSingleton(what)),
    }
}

fn item_eq(a: &Item<'_, '_>, b: &Item<'_, '_>) -> bool {
    fn num(s: &str) -> Option<f64> {
        s.parse().ok()
    }
    let as_json_num = |i: &Item<'_, '_>| -> Option<f64> {
        match i {
            Item::Node(n) => n.value.as_f64(),
            Item::Num(s) => num(s),
            Item::Int(v) => Some(*v as f64),
            _ => None,
        }
    };
    match (a, b) {
        (Item::Node(x), Item::Node(y)) => json_eq(x.value, y.value, 0),
        (Item::Node(n), Item::Str(s)) | (Item::Str(s), Item::Node(n)) => {
            n.value.as_str() == Some(*s)
        }
        (Item::Node(n), Item::Bool(v)) | (Item::Bool(v), Item::Node(n)) => {
            n.value.as_bool() == Some(*v)
        }
        (Item::Str(x), Item::Str(y)) => x == y,
        (Item::Bool(x), Item::Bool(y)) => x == y,
        _ => match (as_json_num(a), as_json_num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn json_eq(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > 256 {
        return false;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q, depth + 1))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w, depth + 1)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------
// Static typing.

/// What an expression can give on a resource of `resource_type`, from the definitions alone:
/// the FHIR types of its result nodes (sorted, without duplicates; `boolean` for a boolean
/// expression). Fails with [`FhirPathError::UnknownElement`] when a path names an element no
/// type in reach has, and with [`FhirPathError::Unresolved`] when it navigates into
/// `resolve()`. Choice elements contribute every allowed type, so the result is what the
/// expression *may* give.
pub fn result_types(expr: &Expr, resource_type: &str) -> Result<Vec<&'static str>> {
    let ty = static_resource_type(resource_type)
        .or_else(|| definitions::resource(resource_type).map(|r| r.name))
        .ok_or(FhirPathError::NotAResource)?;
    let root = SItem::Node { ty, path: ty };
    static_types(expr, root, root)
}

/// [`result_types`] from a given starting point, for a composite's components.
fn static_types(expr: &Expr, resource: SItem, context: SItem) -> Result<Vec<&'static str>> {
    let env = SEnv { resource, context };
    let items = env.infer(&expr.ast, &[context])?;
    let mut out = Vec::new();
    for i in items {
        let t = match i {
            SItem::Node { ty, .. } => ty,
            SItem::Bool => "boolean",
            SItem::Str | SItem::Num => return Err(FhirPathError::LiteralResult),
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SItem {
    Node {
        ty: &'static str,
        path: &'static str,
    },
    Bool,
    Str,
    Num,
}

struct SEnv {
    resource: SItem,
    context: SItem,
}

fn push_unique(out: &mut Vec<SItem>, item: SItem) {
    if !out.contains(&item) {
        out.push(item);
    }
}

fn static_navigate(input: &[SItem], name: &str) -> Result<Vec<SItem>> {
    let mut out = Vec::new();
    let mut any_node = false;
    let mut found = false;
    for item in input {
        let SItem::Node { path, .. } = *item else {
            continue;
        };
        if path.is_empty() {
            return Err(FhirPathError::Unresolved);
        }
        any_node = true;
        let Some(elem) = lookup(path, name) else {
            continue;
        };
        found = true;
        let mut add = |ty: &'static str, path: &'static str| {
            push_unique(&mut out, SItem::Node { ty, path });
        };
        match elem {
            Elem::Single { ty, path, .. } => add(ty, path),
            Elem::Choice(choices) => {
                for (_, ty, path) in choices.iter() {
                    add(ty, path);
                }
            }
        }
    }
    if any_node && !found {
        let scopes: Vec<&str> = input
            .iter()
            .filter_map(|i| match i {
                SItem::Node { path, .. } => Some(*path),
                _ => None,
            })
            .collect();
        return Err(FhirPathError::UnknownElement {
            scope: scopes.join(" | "),
            name: name.to_owned(),
        });
    }
    Ok(out)
}

fn static_of_type(input: &[SItem], spec: TypeSpec) -> Vec<SItem> {
    let mut out = Vec::new();
    for item in input {
        match *item {
            SItem::Node { ty, path } => {
                if type_matches(ty, spec) {
                    push_unique(&mut out, *item);
                } else if let TypeSpec::Fhir(t) = spec
                    && is_a(t, ty)
                {
                    // A narrowing: an inline `Resource`, or a resolve() stand-in.
                    let path = if path.is_empty() { "" } else { type_path(t) };
                    push_unique(&mut out, SItem::Node { ty: t, path });
                }
            }
            SItem::Bool if spec == TypeSpec::System(SystemType::Boolean) => {
                push_unique(&mut out, *item);
            }
            SItem::Str if spec == TypeSpec::System(SystemType::String) => {
                push_unique(&mut out, *item);
            }
            _ => {}
        }
    }
    out
}

impl SEnv {
    fn infer(&self, ast: &Ast, focus: &[SItem]) -> Result<Vec<SItem>> {
        Ok(match ast {
            Ast::Focus => focus.to_vec(),
            Ast::Resource => vec![self.resource],
            Ast::Context => vec![self.context],
            Ast::Nothing => Vec::new(),
            Ast::Str(_) => vec![SItem::Str],
            Ast::Num(_) => vec![SItem::Num],
            Ast::Bool(_) => vec![SItem::Bool],
            Ast::Member(input, name, _) => static_navigate(&self.infer(input, focus)?, name)?,
            Ast::Index(input, _) => self.infer(input, focus)?,
            Ast::Union(l, r) => {
                let mut out = self.infer(l, focus)?;
                for i in self.infer(r, focus)? {
                    push_unique(&mut out, i);
                }
                out
            }
            Ast::Equal(l, r, _) | Ast::Logic(_, l, r) => {
                self.infer(l, focus)?;
                self.infer(r, focus)?;
                vec![SItem::Bool]
            }
            Ast::Call(input, call) => {
                let input = self.infer(input, focus)?;
                match call {
                    Call::Where(crit) => {
                        for item in &input {
                            self.infer(crit, std::slice::from_ref(item))?;
                        }
                        input
                    }
                    Call::Exists(crit) => {
                        if let Some(crit) = crit {
                            for item in &input {
                                self.infer(crit, std::slice::from_ref(item))?;
                            }
                        }
                        vec![SItem::Bool]
                    }
                    Call::Empty | Call::Not | Call::Is(_) => vec![SItem::Bool],
                    Call::First | Call::Last | Call::Tail => input,
                    Call::Count => vec![SItem::Num],
                    Call::OfType(spec) => static_of_type(&input, *spec),
                    Call::Extension(_) => static_navigate(&input, "extension")?,
                    Call::Resolve => {
                        if input.is_empty() {
                            Vec::new()
                        } else {
                            vec![SItem::Node {
                                ty: "Resource",
                                path: "",
                            }]
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::{SearchParamType, all_search_params};
    use serde_json::json;

    fn eval_types(expr: &str, resource: &Value) -> Vec<(String, &'static str)> {
        let e = compile(expr).unwrap();
        evaluate(&e, resource)
            .unwrap()
            .into_iter()
            .map(|n| (n.value.to_string(), n.fhir_type))
            .collect()
    }

    #[test]
    fn every_search_parameter_expression_compiles() {
        let mut failures = Vec::new();
        let mut count = 0;
        for p in all_search_params() {
            let mut exprs: Vec<&str> = p.expression.into_iter().collect();
            exprs.extend(p.components.iter().map(|c| c.expression));
            for e in exprs {
                count += 1;
                if let Err(err) = compile(e) {
                    failures.push(format!("{}.{}: {e}: {err}", p.base, p.code));
                }
            }
        }
        assert!(count > 1700, "{count}");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Every expression, typed against the definitions: every element it names exists, and
    /// it can give something. Components are typed from their composite's nodes.
    #[test]
    fn every_search_parameter_expression_is_well_typed() {
        let mut failures = Vec::new();
        for p in all_search_params() {
            let Some(expr) = p.expression else { continue };
            let bases: Vec<&str> = if p.base == "Resource" || p.base == "DomainResource" {
                vec!["Patient", "Observation"]
            } else {
                vec![p.base]
            };
            for base in bases {
                let e = compile(expr).unwrap();
                match result_types(&e, base) {
                    Ok(t) if t.is_empty() => {
                        failures.push(format!("{base}.{}: {expr}: no types", p.code))
                    }
                    Ok(_) => {}
                    Err(err) => failures.push(format!("{base}.{}: {expr}: {err}", p.code)),
                }
                let root = SItem::Node {
                    ty: static_resource_type(base).unwrap(),
                    path: static_resource_type(base).unwrap(),
                };
                let env = SEnv {
                    resource: root,
                    context: root,
                };
                let contexts = env.infer(&e.ast, &[root]).unwrap_or_default();
                for c in p.components {
                    let ce = compile(c.expression).unwrap();
                    for ctx in &contexts {
                        match static_types(&ce, root, *ctx) {
                            Ok(t) if t.is_empty() => failures.push(format!(
                                "{base}.{} component {}: {}: no types",
                                p.code, c.code, c.expression
                            )),
                            Ok(_) => {}
                            Err(err) => failures.push(format!(
                                "{base}.{} component {}: {}: {err}",
                                p.code, c.code, c.expression
                            )),
                        }
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn static_types_of_some_parameters() {
        let t = |r: &str, code: &str| {
            let p = crate::definitions::search_param(r, code).unwrap();
            result_types(&compile(p.expression.unwrap()).unwrap(), r).unwrap()
        };
        assert_eq!(t("Observation", "code"), ["CodeableConcept"]);
        assert_eq!(
            t("Observation", "date"),
            ["Period", "Timing", "dateTime", "instant"]
        );
        assert_eq!(t("Observation", "patient"), ["Reference"]);
        assert_eq!(t("Patient", "deceased"), ["boolean"]);
        assert_eq!(t("Patient", "_lastUpdated"), ["instant"]);
        assert_eq!(t("Bundle", "composition"), ["Resource"]);
        let kind = crate::definitions::search_param("Patient", "birthdate")
            .unwrap()
            .kind;
        assert_eq!(kind, SearchParamType::Date);
    }

    #[test]
    fn paths_choices_and_arrays() {
        let obs = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "effectivePeriod": {"start": "2020-01-01"},
            "valueQuantity": {"value": 72.5, "unit": "/min"},
            "component": [
                {"code": {"text": "a"}, "valueString": "x"},
                {"code": {"text": "b"}, "valueQuantity": {"value": 1}}
            ]
        });
        assert_eq!(
            eval_types("Observation.status", &obs),
            [("\"final\"".into(), "code")]
        );
        assert_eq!(
            eval_types("Observation.code.coding.code", &obs),
            [("\"8867-4\"".into(), "code")]
        );
        let v = eval_types("Observation.value", &obs);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].1, "Quantity");
        assert_eq!(eval_types("Observation.effective", &obs)[0].1, "Period");
        assert!(eval_types("Observation.value.ofType(string)", &obs).is_empty());
        let comp = eval_types("Observation.component.value", &obs);
        assert_eq!(
            comp.iter().map(|c| c.1).collect::<Vec<_>>(),
            ["string", "Quantity"]
        );
        let comp = eval_types("Observation.component", &obs);
        assert_eq!(comp[0].1, "BackboneElement");
        assert_eq!(eval_types("Observation.component.code.text", &obs).len(), 2);
        assert_eq!(
            eval_types("Observation.component[1].code.text", &obs)[0].0,
            "\"b\""
        );
        assert!(eval_types("Observation.component[5]", &obs).is_empty());
        // Another type's path gives nothing; Resource applies to all.
        assert!(eval_types("Patient.status", &obs).is_empty());
        assert_eq!(eval_types("Resource.resourceType", &obs).len(), 0);
        let with_id = json!({"resourceType": "Observation", "id": "o1"});
        assert_eq!(
            eval_types("Resource.id", &with_id),
            [("\"o1\"".into(), "id")]
        );
        assert_eq!(eval_types("DomainResource.id", &with_id).len(), 1);
        assert_eq!(eval_types("id", &with_id).len(), 1);
    }

    #[test]
    fn where_resolve_and_is() {
        let obs = json!({
            "resourceType": "Observation",
            "subject": {"reference": "Patient/p1"},
            "performer": [
                {"reference": "Practitioner/d1"},
                {"reference": "https://example.org/fhir/Patient/p2/_history/3"},
                {"type": "Patient", "identifier": {"value": "x"}},
                {"reference": "urn:uuid:1234"},
                {"reference": "#c1"}
            ],
            "contained": [{"resourceType": "Patient", "id": "c1"}]
        });
        assert_eq!(
            eval_types("Observation.subject.where(resolve() is Patient)", &obs).len(),
            1
        );
        assert!(eval_types("Observation.subject.where(resolve() is Group)", &obs).is_empty());
        let perf = eval_types("Observation.performer.where(resolve() is Patient)", &obs);
        assert_eq!(perf.len(), 3, "{perf:?}");
        assert_eq!(
            eval_types(
                "Observation.performer.where(resolve() is Practitioner)",
                &obs
            )
            .len(),
            1
        );
        let r = eval_types("Observation.performer.resolve()", &obs);
        assert_eq!(
            r.iter().map(|x| x.1).collect::<Vec<_>>(),
            ["Practitioner", "Patient", "Patient", "Patient"]
        );
        // The contained resource is the real thing; the others are stand-ins.
        assert_eq!(
            eval_types(
                "Observation.performer.resolve().id",
                &json!({
            "resourceType": "Observation", "performer": [{"reference": "#c1"}],
            "contained": [{"resourceType": "Patient", "id": "c1"}]})
            )
            .len(),
            1
        );
        let e = compile("Observation.subject.resolve().name").unwrap();
        assert_eq!(evaluate(&e, &obs), Err(FhirPathError::Unresolved));
        assert_eq!(
            eval_types("Observation.subject.resolve() is Patient", &obs),
            [("true".into(), "boolean")]
        );
        assert_eq!(
            eval_types("Observation.subject is Reference", &obs),
            [("true".into(), "boolean")]
        );
        assert_eq!(
            eval_types("Observation.subject as Reference", &obs).len(),
            1
        );
        let e = compile("Observation.performer is Reference").unwrap();
        assert_eq!(evaluate(&e, &obs), Err(FhirPathError::NotSingleton("is")));
    }

    #[test]
    fn equality_logic_and_functions() {
        let p = json!({
            "resourceType": "Patient",
            "telecom": [
                {"system": "phone", "value": "0300"},
                {"system": "email", "value": "a@b"}
            ],
            "deceasedBoolean": false,
            "extension": [
                {"url": "http://a", "valueString": "one"},
                {"url": "http://b", "valueCode": "two"}
            ]
        });
        let phones = eval_types("Patient.telecom.where(system='phone')", &p);
        assert_eq!(phones.len(), 1);
        assert_eq!(phones[0].1, "ContactPoint");
        let d = "Patient.deceased.exists() and Patient.deceased != false";
        assert_eq!(eval_types(d, &p), [("false".into(), "boolean")]);
        let alive = json!({"resourceType": "Patient"});
        assert_eq!(eval_types(d, &alive), [("false".into(), "boolean")]);
        let dead = json!({"resourceType": "Patient", "deceasedDateTime": "2020-01-01"});
        assert_eq!(eval_types(d, &dead), [("true".into(), "boolean")]);
        assert_eq!(
            eval_types("Patient.deceased.exists() or Patient.name.exists()", &dead)[0].0,
            "true"
        );
        assert_eq!(
            eval_types("Patient.name.exists() xor true", &dead)[0].0,
            "true"
        );
        assert_eq!(
            eval_types("Patient.name.exists() implies false", &dead)[0].0,
            "true"
        );
        assert_eq!(eval_types("Patient.name.empty()", &dead)[0].0, "true");
        assert_eq!(
            eval_types("Patient.name.exists().not()", &dead)[0].0,
            "true"
        );
        assert_eq!(
            eval_types("Patient.telecom.first().value", &p)[0].0,
            "\"0300\""
        );
        assert_eq!(
            eval_types("Patient.telecom.last().value", &p)[0].0,
            "\"a@b\""
        );
        assert_eq!(
            eval_types("Patient.telecom.tail().value", &p)[0].0,
            "\"a@b\""
        );
        assert_eq!(eval_types("Patient.telecom.count() = 2", &p)[0].0, "true");
        assert_eq!(
            eval_types("Patient.telecom.exists(system = 'email')", &p)[0].0,
            "true"
        );
        assert_eq!(
            eval_types("Patient.extension('http://b').value", &p),
            [("\"two\"".into(), "code")]
        );
        assert_eq!(
            eval_types("Patient.extension.where(url = 'http://a').value", &p),
            [("\"one\"".into(), "string")]
        );
        assert_eq!(
            eval_types("Patient.telecom.value | Patient.telecom.value", &p).len(),
            2
        );
        assert_eq!(
            eval_types("(Patient.telecom | Patient.telecom[0]).value", &p).len(),
            2
        );
        assert!(eval_types("{}", &p).is_empty());
        assert_eq!(
            eval_types("Patient.telecom.where($this.system = 'email').value", &p).len(),
            1
        );
        assert_eq!(eval_types("%resource.telecom.value", &p).len(), 2);
        assert_eq!(eval_types("Patient.deceased.ofType(boolean)", &p).len(), 1);
        assert_eq!(eval_types("Patient.deceased.ofType(Boolean)", &p).len(), 1);
        assert_eq!(
            eval_types("Patient.deceased.ofType(System.Boolean)", &p).len(),
            1
        );
        assert_eq!(
            eval_types("Patient.deceased.ofType(FHIR.dateTime)", &p).len(),
            0
        );
        assert_eq!(eval_types("`Patient`.`telecom`", &p).len(), 2);
    }

    #[test]
    fn recursion_and_inline_resources() {
        let q = json!({
            "resourceType": "Questionnaire",
            "item": [{"linkId": "1", "item": [{"linkId": "1.1", "item": [{"linkId": "1.1.1"}]}]}]
        });
        assert_eq!(
            eval_types("Questionnaire.item.item.item.linkId", &q),
            [("\"1.1.1\"".into(), "string")]
        );
        let b = json!({
            "resourceType": "Bundle",
            "entry": [{"resource": {"resourceType": "Composition", "id": "c"}}, {"resource": {"resourceType": "Patient"}}]
        });
        assert_eq!(
            eval_types("Bundle.entry[0].resource", &b)[0].1,
            "Composition"
        );
        assert_eq!(
            eval_types("Bundle.entry.resource.id", &b),
            [("\"c\"".into(), "id")]
        );
        let t = json!({"resourceType": "Observation", "effectiveTiming": {"repeat": {"boundsPeriod": {"start": "2020"}}}});
        assert_eq!(
            eval_types("Observation.effective.repeat.bounds", &t)[0].1,
            "Period"
        );
        assert_eq!(
            eval_types("Observation.effective.repeat", &t)[0].1,
            "Element"
        );
        let sq = json!({"resourceType": "Medication", "amount": {"numerator": {"value": 1}}});
        assert_eq!(
            eval_types("Medication.amount.numerator.value", &sq)[0].1,
            "decimal"
        );
    }

    #[test]
    fn composite_components_evaluate_from_a_context() {
        let obs = json!({
            "resourceType": "Observation",
            "component": [{"code": {"text": "a"}, "valueQuantity": {"value": 1}}]
        });
        let p = compiled_param("Observation", "component-code-value-quantity").unwrap();
        let ctx = evaluate(p.expr.as_ref().unwrap().as_ref().unwrap(), &obs).unwrap();
        assert_eq!(ctx.len(), 1);
        let code = evaluate_from(p.components[0].as_ref().unwrap(), &obs, ctx[0]).unwrap();
        assert_eq!(code[0].fhir_type, "CodeableConcept");
        let value = evaluate_from(p.components[1].as_ref().unwrap(), &obs, ctx[0]).unwrap();
        assert_eq!(value[0].fhir_type, "Quantity");
        let e = compile("%context.code").unwrap();
        assert_eq!(evaluate_from(&e, &obs, ctx[0]).unwrap().len(), 1);
    }

    #[test]
    fn unsupported_constructs_are_errors() {
        for bad in [
            "Patient.name + 1",
            "Patient.birthDate > @2020",
            "Patient.name.select(given)",
            "-1",
            "Patient.name[Patient.x]",
            "%ucum",
            "$index",
            "Patient.a ~ 'x'",
            "Patient.a in Patient.b",
            "5 'mg'",
        ] {
            assert!(
                matches!(compile(bad), Err(FhirPathError::Unsupported(_))),
                "{bad}: {:?}",
                compile(bad)
            );
        }
        for bad in [
            "",
            "Patient.",
            "Patient.name(",
            "(Patient",
            "'abc",
            "Patient..x",
            "a b",
            "#",
            "Patient.name.where()",
            "ofType()",
            "first(1)",
        ] {
            assert!(compile(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            compile("Nonsense.x"),
            Err(FhirPathError::UnknownType(_))
        ));
        assert!(matches!(
            compile("x.ofType(Nope)"),
            Err(FhirPathError::UnknownType(_))
        ));
        assert!(matches!(
            compile("x.extension(1)"),
            Err(FhirPathError::Arguments { .. })
        ));
        let deep = format!("{}x{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(compile(&deep), Err(FhirPathError::TooDeep));
        let deep = "x.where(".repeat(200);
        assert_eq!(compile(&deep), Err(FhirPathError::TooDeep));
        let long = format!("Patient{}", ".name".repeat(2000));
        assert_eq!(compile(&long), Err(FhirPathError::TooDeep));
        let long = format!("Patient{}", ".name".repeat(400));
        assert_eq!(compile(&long), Err(FhirPathError::TooDeep));
        let long = format!("Patient{}", " | Patient.name".repeat(100));
        assert_eq!(compile(&long), Err(FhirPathError::TooDeep));
        let e = compile(&format!("Patient{}", ".name".repeat(40))).unwrap();
        assert!(
            evaluate(&e, &json!({"resourceType": "Patient"}))
                .unwrap()
                .is_empty()
        );
        // A literal is no node.
        let e = compile("'abc'").unwrap();
        assert_eq!(
            evaluate(&e, &json!({"resourceType": "Patient"})),
            Err(FhirPathError::LiteralResult)
        );
        assert_eq!(
            evaluate(&e, &json!({"resourceType": "Nope"})),
            Err(FhirPathError::NotAResource)
        );
        // Extensions of primitives are not reachable: an error, not an empty result.
        let e = compile("Patient.birthDate.extension").unwrap();
        let p = json!({"resourceType": "Patient", "birthDate": "2000", "_birthDate": {"extension": []}});
        assert!(matches!(
            evaluate(&e, &p),
            Err(FhirPathError::Unsupported(_))
        ));
    }

    #[test]
    fn references() {
        assert_eq!(parse_reference("Patient/1"), Some(("Patient", "1")));
        assert_eq!(
            parse_reference("Patient/1/_history/2"),
            Some(("Patient", "1"))
        );
        assert_eq!(
            parse_reference("https://x.org/fhir/Patient/a.b-c/_history/2"),
            Some(("Patient", "a.b-c"))
        );
        assert_eq!(parse_reference("Nope/1"), None);
        assert_eq!(parse_reference("Patient/"), None);
        assert_eq!(parse_reference("a/Patient/1"), None);
        assert_eq!(parse_reference("#p"), None);
        assert_eq!(parse_reference("urn:uuid:Patient/1"), None);
        assert_eq!(parse_reference("Patient"), None);
        assert_eq!(parse_reference("/_history/1"), None);
        assert_eq!(parse_reference(""), None);
        assert_eq!(reference_type(&json!({"type": "Group"})), Some("Group"));
        assert_eq!(
            reference_type(&json!({"reference": "Patient/1", "type": "Group"})),
            Some("Patient")
        );
    }

    #[test]
    fn compiled_params_are_cached() {
        let a = compiled_params("Observation");
        let b = compiled_params("Observation");
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.len(), definitions::search_params("Observation").count());
        assert!(compiled_params("Nope").is_empty());
        assert!(compiled_param("Patient", "_lastUpdated").is_some());
        for t in RESOURCE_TYPES {
            for p in compiled_params(t) {
                assert!(
                    p.expr.as_ref().is_none_or(Result::is_ok),
                    "{t}.{}",
                    p.def.code
                );
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const PIECES: &[&str] = &[
            "Patient",
            "Observation",
            ".",
            "name",
            "code",
            "value",
            "(",
            ")",
            "[",
            "]",
            "0",
            "1.5",
            "'x'",
            "|",
            "=",
            "!=",
            " and ",
            " or ",
            " is ",
            " as ",
            "where(",
            "ofType(",
            "resolve()",
            "exists()",
            "first()",
            "extension(",
            "%resource",
            "$this",
            "{}",
            "true",
            ",",
            "`a`",
            "Quantity",
            "@",
            "\\",
            "'",
            "/*",
            "//",
            "~",
            "+",
        ];

        proptest! {
            #[test]
            fn compile_never_panics(s in ".{0,60}") {
                let _ = compile(&s);
            }

            #[test]
            fn compile_and_evaluate_token_soup_never_panic(
                parts in prop::collection::vec(prop::sample::select(PIECES), 0..24),
            ) {
                let src: String = parts.concat();
                if let Ok(e) = compile(&src) {
                    let r = json!({"resourceType": "Patient", "name": [{"given": ["a"]}],
                        "extension": [{"url": "x", "valueString": "y"}]});
                    let _ = evaluate(&e, &r);
                    let _ = result_types(&e, "Patient");
                }
            }
        }
    }

    #[test]
    fn evaluation_never_panics_on_odd_json() {
        let odd = json!({
            "resourceType": "Observation",
            "code": "not an object",
            "subject": [1, 2],
            "component": {"code": null},
            "valueQuantity": [null, {"value": "x"}],
            "performer": [null, {"reference": 5}, {"reference": "Patient/"}],
            "contained": "x"
        });
        for p in compiled_params("Observation") {
            if let Some(Ok(e)) = &p.expr {
                let _ = evaluate(e, &odd);
            }
        }
        let e = compile("Observation.performer.resolve()").unwrap();
        assert!(evaluate(&e, &odd).unwrap().is_empty());
    }
}
