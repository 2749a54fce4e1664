//! `ALTER PROPERTY GRAPH`: a change to a graph's definition, applied to the
//! graph as it stands when the command reaches the state machine.
//!
//! The planner checks a change against the catalog it sees (the tables
//! exist, a property's expression plans) and sends only the change, not
//! the graph's whole new definition, so two sessions' changes to one graph
//! both stand, whichever applies first. What only the graph itself can
//! judge (an alias taken, a vertex table an edge still ends in, the last
//! label of an element) is judged here, in log order, all or nothing.

use serde::{Deserialize, Serialize};

use crate::catalog::{EdgeTable, ElementTable, GraphDef, GraphLabel, GraphProperty};
use crate::error::{RejectionKind, Result};
use crate::state::reject;

/// The kind of element table a change names: `ALTER VERTEX TABLE` does not
/// find an edge table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElementKind {
    Vertex,
    Edge,
}

impl ElementKind {
    fn name(self) -> &'static str {
        match self {
            ElementKind::Vertex => "vertex",
            ElementKind::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GraphAlterOp {
    /// `ADD VERTEX TABLES (...) EDGE TABLES (...)`.
    AddTables {
        vertices: Vec<ElementTable>,
        edges: Vec<EdgeTable>,
    },
    /// `DROP VERTEX|EDGE TABLES (aliases) [CASCADE]`: CASCADE also drops the
    /// edge tables that end in a dropped vertex table.
    DropTables {
        kind: ElementKind,
        aliases: Vec<String>,
        cascade: bool,
    },
    /// `ALTER VERTEX|EDGE TABLE e ADD LABEL l [properties] ...`.
    AddLabels {
        kind: ElementKind,
        element: String,
        labels: Vec<GraphLabel>,
    },
    /// `ALTER VERTEX|EDGE TABLE e DROP LABEL l`.
    DropLabel {
        kind: ElementKind,
        element: String,
        label: String,
    },
    /// `ALTER VERTEX|EDGE TABLE e ALTER LABEL l ADD PROPERTIES (...)`. A
    /// label with all columns first gets them listed: `all_columns`, the
    /// table's columns when the statement was planned.
    AddProperties {
        kind: ElementKind,
        element: String,
        label: String,
        properties: Vec<GraphProperty>,
        all_columns: Vec<GraphProperty>,
    },
    /// `ALTER VERTEX|EDGE TABLE e ALTER LABEL l DROP PROPERTIES (names)`.
    DropProperties {
        kind: ElementKind,
        element: String,
        label: String,
        names: Vec<String>,
        all_columns: Vec<GraphProperty>,
    },
    /// `RENAME TO name`: applied to the schema, not the definition.
    Rename { to: String },
}

impl GraphDef {
    /// The element table of `kind` known as `alias` in `graph`.
    pub fn element(&self, graph: &str, kind: ElementKind, alias: &str) -> Result<&ElementTable> {
        let found = match kind {
            ElementKind::Vertex => self.vertices.iter().find(|e| e.alias == alias),
            ElementKind::Edge => (self.edges.iter().map(|e| &e.element)).find(|e| e.alias == alias),
        };
        found.ok_or_else(|| no_element(graph, kind, alias))
    }

    fn element_mut(
        &mut self,
        graph: &str,
        kind: ElementKind,
        alias: &str,
    ) -> Result<&mut ElementTable> {
        let found = match kind {
            ElementKind::Vertex => self.vertices.iter_mut().find(|e| e.alias == alias),
            ElementKind::Edge => {
                (self.edges.iter_mut().map(|e| &mut e.element)).find(|e| e.alias == alias)
            }
        };
        found.ok_or_else(|| no_element(graph, kind, alias))
    }

    /// Applies `op` (not `Rename`) to this definition of `graph`; on an
    /// error the definition may be half changed, so the caller alters a
    /// copy.
    pub(crate) fn alter(&mut self, graph: &str, op: &GraphAlterOp) -> Result<()> {
        match op {
            GraphAlterOp::AddTables { vertices, edges } => {
                for vertex in vertices {
                    self.check_alias_free(&vertex.alias)?;
                    self.vertices.push(vertex.clone());
                }
                for edge in edges {
                    self.check_alias_free(&edge.element.alias)?;
                    for end in [&edge.source, &edge.destination] {
                        self.element(graph, ElementKind::Vertex, &end.vertex)?;
                    }
                    self.edges.push(edge.clone());
                }
            }
            GraphAlterOp::DropTables {
                kind,
                aliases,
                cascade,
            } => {
                for alias in aliases {
                    self.element(graph, *kind, alias)?;
                }
                if *kind == ElementKind::Vertex {
                    let dropped = |vertex: &String| aliases.contains(vertex);
                    let ends_in_dropped =
                        |e: &EdgeTable| dropped(&e.source.vertex) || dropped(&e.destination.vertex);
                    if let Some(edge) = self.edges.iter().find(|e| ends_in_dropped(e))
                        && !cascade
                    {
                        let vertex = [&edge.source.vertex, &edge.destination.vertex]
                            .into_iter()
                            .find(|v| dropped(v))
                            .expect("the edge ends in a dropped vertex table");
                        return Err(reject(
                            RejectionKind::DependentObjects,
                            format!(
                                "cannot drop vertex table \"{vertex}\" of property graph \"{graph}\" because edge table \"{}\" ends in it (use CASCADE to drop it too)",
                                edge.element.alias
                            ),
                        ));
                    }
                    self.edges.retain(|e| !ends_in_dropped(e));
                    self.vertices.retain(|v| !dropped(&v.alias));
                } else {
                    self.edges.retain(|e| !aliases.contains(&e.element.alias));
                }
            }
            GraphAlterOp::AddLabels {
                kind,
                element,
                labels,
            } => {
                let element = self.element_mut(graph, *kind, element)?;
                for label in labels {
                    if element.labels.iter().any(|l| l.name == label.name) {
                        return Err(reject(
                            RejectionKind::DuplicateObject,
                            format!(
                                "element table \"{}\" of property graph \"{graph}\" already has label \"{}\"",
                                element.alias, label.name
                            ),
                        ));
                    }
                    element.labels.push(label.clone());
                }
            }
            GraphAlterOp::DropLabel {
                kind,
                element,
                label,
            } => {
                let element = self.element_mut(graph, *kind, element)?;
                let at = label_at(graph, element, label)?;
                if element.labels.len() == 1 {
                    return Err(reject(
                        RejectionKind::InvalidObjectDefinition,
                        format!(
                            "cannot drop label \"{label}\": it is the last label of element table \"{}\" of property graph \"{graph}\"",
                            element.alias
                        ),
                    ));
                }
                element.labels.remove(at);
            }
            GraphAlterOp::AddProperties {
                kind,
                element,
                label,
                properties,
                all_columns,
            } => {
                let listed = self.label_properties(graph, *kind, element, label, all_columns)?;
                for property in properties {
                    if listed.iter().any(|p| p.name == property.name) {
                        return Err(reject(
                            RejectionKind::DuplicateObject,
                            format!(
                                "label \"{label}\" of element table \"{element}\" already has property \"{}\"",
                                property.name
                            ),
                        ));
                    }
                    listed.push(property.clone());
                }
            }
            GraphAlterOp::DropProperties {
                kind,
                element,
                label,
                names,
                all_columns,
            } => {
                let listed = self.label_properties(graph, *kind, element, label, all_columns)?;
                for name in names {
                    let Some(at) = listed.iter().position(|p| p.name == *name) else {
                        return Err(reject(
                            RejectionKind::UndefinedObject,
                            format!(
                                "label \"{label}\" of element table \"{element}\" has no property \"{name}\""
                            ),
                        ));
                    };
                    listed.remove(at);
                }
            }
            GraphAlterOp::Rename { .. } => unreachable!("a rename changes the schema"),
        }
        Ok(())
    }

    /// The properties of `label` of an element table, listed: a label
    /// that had every column gets `all_columns` first.
    fn label_properties(
        &mut self,
        graph: &str,
        kind: ElementKind,
        element: &str,
        label: &str,
        all_columns: &[GraphProperty],
    ) -> Result<&mut Vec<GraphProperty>> {
        let element = self.element_mut(graph, kind, element)?;
        let at = label_at(graph, element, label)?;
        Ok(element.labels[at]
            .properties
            .get_or_insert_with(|| all_columns.to_vec()))
    }

    /// Refuses `alias` if an element table of the graph has it.
    pub fn check_alias_free(&self, alias: &str) -> Result<()> {
        let taken = self.vertices.iter().map(|v| &v.alias);
        if taken
            .chain(self.edges.iter().map(|e| &e.element.alias))
            .any(|a| a == alias)
        {
            return Err(reject(
                RejectionKind::DuplicateObject,
                format!("alias \"{alias}\" used more than once as element table"),
            ));
        }
        Ok(())
    }
}

fn no_element(graph: &str, kind: ElementKind, alias: &str) -> crate::error::Error {
    reject(
        RejectionKind::UndefinedObject,
        format!(
            "property graph \"{graph}\" has no {} table \"{alias}\"",
            kind.name()
        ),
    )
}

fn label_at(graph: &str, element: &ElementTable, label: &str) -> Result<usize> {
    element
        .labels
        .iter()
        .position(|l| l.name == label)
        .ok_or_else(|| {
            reject(
                RejectionKind::UndefinedObject,
                format!(
                    "element table \"{}\" of property graph \"{graph}\" has no label \"{label}\"",
                    element.alias
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{EdgeEnd, TableId};
    use crate::error::Error;

    fn element(alias: &str, table: u64) -> ElementTable {
        ElementTable {
            alias: alias.into(),
            table: TableId(table),
            key: vec!["id".into()],
            labels: vec![GraphLabel {
                name: alias.into(),
                properties: None,
            }],
        }
    }

    fn edge(alias: &str, table: u64, from: &str, to: &str) -> EdgeTable {
        let end = |vertex: &str| EdgeEnd {
            vertex: vertex.into(),
            columns: vec!["v".into()],
            references: vec!["id".into()],
        };
        EdgeTable {
            element: element(alias, table),
            source: end(from),
            destination: end(to),
        }
    }

    fn kind_of(result: Result<()>) -> RejectionKind {
        match result {
            Err(Error::Rejected(r)) => r.kind,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn label(name: &str) -> GraphLabel {
        GraphLabel {
            name: name.into(),
            properties: Some(Vec::new()),
        }
    }

    /// Two changes planned against the same definition both stand, applied
    /// one after the other: each names what it changes, not the result.
    #[test]
    fn changes_planned_together_compose() {
        let mut def = GraphDef {
            vertices: vec![element("person", 1)],
            edges: Vec::new(),
        };
        let first = GraphAlterOp::AddLabels {
            kind: ElementKind::Vertex,
            element: "person".into(),
            labels: vec![label("human")],
        };
        let second = GraphAlterOp::AddTables {
            vertices: Vec::new(),
            edges: vec![edge("knows", 2, "person", "person")],
        };
        def.alter("g", &first).unwrap();
        def.alter("g", &second).unwrap();
        let names: Vec<_> = def.vertices[0].labels.iter().map(|l| &l.name).collect();
        assert_eq!(names, ["person", "human"]);
        assert_eq!(def.edges.len(), 1);
        // The same label again is refused.
        assert_eq!(
            kind_of(def.alter("g", &first)),
            RejectionKind::DuplicateObject
        );
    }

    #[test]
    fn a_vertex_table_an_edge_ends_in_goes_only_with_cascade() {
        let mut def = GraphDef {
            vertices: vec![element("person", 1), element("city", 3)],
            edges: vec![
                edge("knows", 2, "person", "person"),
                edge("lives", 4, "person", "city"),
            ],
        };
        let drop = |cascade| GraphAlterOp::DropTables {
            kind: ElementKind::Vertex,
            aliases: vec!["city".into()],
            cascade,
        };
        assert_eq!(
            kind_of(def.clone().alter("g", &drop(false))),
            RejectionKind::DependentObjects
        );
        def.alter("g", &drop(true)).unwrap();
        assert_eq!(def.vertices.len(), 1);
        let edges: Vec<_> = def.edges.iter().map(|e| &e.element.alias).collect();
        assert_eq!(edges, ["knows"]);
        // An edge table is not a vertex table.
        let wrong_kind = GraphAlterOp::DropTables {
            kind: ElementKind::Vertex,
            aliases: vec!["knows".into()],
            cascade: false,
        };
        assert_eq!(
            kind_of(def.alter("g", &wrong_kind)),
            RejectionKind::UndefinedObject
        );
    }

    #[test]
    fn labels_keep_one_and_properties_list_all_columns_first() {
        let mut def = GraphDef {
            vertices: vec![element("person", 1)],
            edges: Vec::new(),
        };
        let drop_label = GraphAlterOp::DropLabel {
            kind: ElementKind::Vertex,
            element: "person".into(),
            label: "person".into(),
        };
        assert_eq!(
            kind_of(def.alter("g", &drop_label)),
            RejectionKind::InvalidObjectDefinition
        );
        let column = |name: &str| GraphProperty {
            name: name.into(),
            expr: format!("\"{name}\""),
        };
        let drop_property = GraphAlterOp::DropProperties {
            kind: ElementKind::Vertex,
            element: "person".into(),
            label: "person".into(),
            names: vec!["born".into()],
            all_columns: vec![column("id"), column("name"), column("born")],
        };
        def.alter("g", &drop_property).unwrap();
        let properties = def.vertices[0].labels[0].properties.as_ref().unwrap();
        let names: Vec<_> = properties.iter().map(|p| &p.name).collect();
        assert_eq!(names, ["id", "name"]);
        assert_eq!(
            kind_of(def.alter("g", &drop_property)),
            RejectionKind::UndefinedObject
        );
    }
}
