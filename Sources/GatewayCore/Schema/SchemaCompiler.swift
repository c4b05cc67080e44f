// SchemaCompiler.swift: turns a schema document into `SchemaNode`s.
//
// Two passes. Discovery walks the document through the keywords that hold subschemas (never through
// `enum`, `const` or unknown keywords, whose `$id`s are not identifiers) and records, for each schema
// location, its base URI (after `$id`s), its dialect (after `$schema`) and its resource; it registers
// every `$id` resource and every `$anchor`/`$dynamicAnchor`. Compilation then builds one node per
// location reached from the root, resolving `$ref`s to node indices (memoised by location, so shared
// and recursive references compile once and cycles are fine). A reference into a place discovery did
// not visit (`#/examples/0`, a subschema under an unknown keyword) is discovered when it is reached.

struct SchemaCompilerOutput {
    let program: SchemaProgram
    let dialect: SchemaDialect
    let unsupportedKeywords: [String]
    let declaredProperties: [SchemaPropertySummary]
}

final class SchemaCompiler {
    struct Location: Hashable {
        var document: Int
        var pointer: String

        func appending(_ token: String) -> Location {
            Location(document: document, pointer: pointer + "/" + SchemaPointer.escape(token))
        }
    }

    struct LocationInfo {
        var base: SchemaURI
        var dialect: SchemaDialect
        var resource: Int
    }

    /// The base URI of a schema without `$id`: a local, hierarchical placeholder, so relative references
    /// resolve consistently and can never be mistaken for a network location.
    static let localBase = SchemaURI(parsing: "x-mcp-gateway-schema:///root.json")

    /// Keywords whose value is a subschema, an array of subschemas, or an object of subschemas.
    static let singleSchemaKeywords: Set<String> = [
        "additionalProperties", "propertyNames", "contains", "not", "if", "then", "else", "additionalItems",
        "unevaluatedProperties", "unevaluatedItems", "items", "contentSchema",
    ]
    static let schemaArrayKeywords: Set<String> = ["allOf", "anyOf", "oneOf", "prefixItems", "items"]
    static let schemaMapKeywords: Set<String> = [
        "properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies",
    ]
    /// 2019-09/2020-12 keywords that draft-07 does not have (ignored there, and reported).
    static let modernKeywords: Set<String> = [
        "prefixItems", "dependentRequired", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems",
        "minContains", "maxContains", "$anchor", "$dynamicRef", "$dynamicAnchor",
    ]
    /// Keywords of neither dialect that a schema may still carry by mistake (2019-09's recursion).
    static let foreignKeywords: Set<String> = ["$recursiveRef", "$recursiveAnchor"]

    let defaultDialect: SchemaDialect
    let assertFormat: Bool
    var documents: [JSONValue]
    var info: [Location: LocationInfo] = [:]
    var resources: [String: Int] = [:]
    var resourceLocations: [Location] = []
    var resourceByLocation: [Location: Int] = [:]
    var anchors: [String: Location] = [:]
    var dynamicAnchorLocations: [String: [Int: Location]] = [:]
    var usedDynamicAnchors: Set<String> = []
    var nodeIndex: [Location: Int] = [:]
    var parts: [SchemaNodeParts?] = []
    var unsupported: [String] = []
    /// Nodes given an index but not built yet. Building is iterative (a node queues its subschemas
    /// and reference targets), so neither deep nesting nor long `$ref` chains use machine stack.
    var pending: [Location] = []
    /// Member indexes of large objects, by location (see `child(of:at:_:)`).
    var largeObjects: [Location: [String: JSONValue]] = [:]

    init(root: JSONValue, defaultDialect: SchemaDialect, assertFormat: Bool) {
        self.defaultDialect = defaultDialect
        self.assertFormat = assertFormat
        documents = [root]
    }

    func run() throws(SchemaCompileError) -> SchemaCompilerOutput {
        let rootLocation = Location(document: 0, pointer: "")
        let rootResource = registerResource(Self.localBase.text, at: rootLocation)
        discover(documents[0], at: rootLocation, base: Self.localBase, dialect: defaultDialect, resource: rootResource, isDocumentRoot: true)
        let root = try compileNode(rootLocation)
        try buildPending()

        // Every resource's `$dynamicAnchor` for each name some `$dynamicRef` may look up at run time.
        var dynamicAnchors: [String: [Int: Int]] = [:]
        var changed = true
        while changed {
            changed = false
            for name in usedDynamicAnchors.sorted() {
                for (resource, location) in dynamicAnchorLocations[name] ?? [:] where dynamicAnchors[name]?[resource] == nil {
                    dynamicAnchors[name, default: [:]][resource] = try compileNode(location)
                    try buildPending()
                    changed = true
                }
            }
        }

        let nodes = parts.map { SchemaNode($0 ?? SchemaNodeParts(isTrue: true)) }
        let program = SchemaProgram(nodes: nodes, root: root, usesDynamicScope: !usedDynamicAnchors.isEmpty, dynamicAnchors: dynamicAnchors)
        return SchemaCompilerOutput(
            program: program, dialect: info[rootLocation]?.dialect ?? defaultDialect, unsupportedKeywords: unsupported,
            declaredProperties: declaredProperties(rootLocation))
    }

    // MARK: Errors and notes

    func error(_ path: String, _ message: String) -> SchemaCompileError {
        SchemaCompileError(schemaPath: path, message: message)
    }

    func noteUnsupported(_ keyword: String) {
        if !unsupported.contains(keyword) { unsupported.append(keyword) }
    }

    // MARK: Dialects

    /// The dialect a `$schema` URI names, or nil when it is not one this validator knows.
    static func dialect(forSchemaURI text: String) -> SchemaDialect? {
        var uri = text.lowercased()
        while uri.hasSuffix("#") { uri.removeLast() }
        if uri.hasPrefix("http://") { uri = "https://" + uri.dropFirst("http://".count) }
        switch uri {
        case "https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema":
            return .draft2020_12
        case "https://json-schema.org/draft-07/schema", "https://json-schema.org/draft-06/schema",
            "https://json-schema.org/draft-04/schema":
            return .draft7
        default:
            return nil
        }
    }

    // MARK: Discovery

    func registerResource(_ uri: String, at location: Location) -> Int {
        if let existing = resourceByLocation[location] {
            if resources[uri] == nil { resources[uri] = existing }
            return existing
        }
        let index = resourceLocations.count
        resourceLocations.append(location)
        resourceByLocation[location] = index
        if resources[uri] == nil { resources[uri] = index }
        return index
    }

    func discover(
        _ value: JSONValue, at location: Location, base: SchemaURI, dialect: SchemaDialect, resource: Int, isDocumentRoot: Bool
    ) {
        guard case .object(let object) = value else {
            if info[location] == nil { info[location] = LocationInfo(base: base, dialect: dialect, resource: resource) }
            return
        }
        var base = base
        var dialect = dialect
        var resource = resource
        if case .string(let schemaURI)? = object["$schema"], isDocumentRoot || object["$id"] != nil {
            if let named = Self.dialect(forSchemaURI: schemaURI) {
                dialect = named
            } else {
                noteUnsupported("$schema")
            }
        }
        // draft-07: "All other properties in a "$ref" object MUST be ignored", `$id` included.
        let idIgnored = dialect == .draft7 && object["$ref"] != nil
        if !idIgnored, case .string(let id)? = object["$id"] {
            let resolved = base.resolving(SchemaURI(parsing: id))
            if dialect == .draft7 && id.hasPrefix("#") {
                // A draft-07 location-independent identifier: a plain-name fragment is an anchor.
                anchors[base.withoutFragment.text + "#" + SchemaURI.percentDecoded(String(id.dropFirst()))] = location
            } else {
                base = resolved.withoutFragment
                resource = registerResource(base.text, at: location)
                if dialect == .draft7, let fragment = resolved.fragment, !fragment.isEmpty, !fragment.hasPrefix("/") {
                    anchors[base.text + "#" + SchemaURI.percentDecoded(fragment)] = location
                }
            }
        }
        if dialect == .draft2020_12 {
            if case .string(let anchor)? = object["$anchor"] { anchors[base.text + "#" + anchor] = location }
            if case .string(let anchor)? = object["$dynamicAnchor"] {
                if anchors[base.text + "#" + anchor] == nil { anchors[base.text + "#" + anchor] = location }
                dynamicAnchorLocations[anchor, default: [:]][resource] = location
            }
        }
        info[location] = LocationInfo(base: base, dialect: dialect, resource: resource)

        for (key, member) in object.storage {
            if Self.singleSchemaKeywords.contains(key), member.isSchemaShaped {
                discover(member, at: location.appending(key), base: base, dialect: dialect, resource: resource, isDocumentRoot: false)
            }
            if Self.schemaArrayKeywords.contains(key), case .array(let elements) = member {
                let keyLocation = location.appending(key)
                for (position, element) in elements.enumerated() where element.isSchemaShaped {
                    discover(element, at: keyLocation.appending(String(position)), base: base, dialect: dialect, resource: resource, isDocumentRoot: false)
                }
            }
            if Self.schemaMapKeywords.contains(key), case .object(let map) = member {
                let keyLocation = location.appending(key)
                for (name, element) in map.storage where element.isSchemaShaped {
                    discover(element, at: keyLocation.appending(name), base: base, dialect: dialect, resource: resource, isDocumentRoot: false)
                }
            }
        }
    }

    /// The location's base, dialect and resource; for a place discovery did not visit, discovered now
    /// from its nearest visited ancestor.
    func locationInfo(_ location: Location, value: JSONValue) -> LocationInfo {
        if let known = info[location] { return known }
        var tokens = SchemaPointer.tokens(location.pointer)
        var ancestor = LocationInfo(base: Self.localBase, dialect: defaultDialect, resource: 0)
        while !tokens.isEmpty {
            tokens.removeLast()
            let pointer = tokens.map { "/" + SchemaPointer.escape($0) }.joined()
            if let known = info[Location(document: location.document, pointer: pointer)] {
                ancestor = known
                break
            }
        }
        discover(value, at: location, base: ancestor.base, dialect: ancestor.dialect, resource: ancestor.resource, isDocumentRoot: false)
        return info[location] ?? ancestor
    }

    func value(at location: Location) -> JSONValue? {
        var current = documents[location.document]
        var walked = Location(document: location.document, pointer: "")
        for token in SchemaPointer.tokens(location.pointer) {
            guard let next = child(of: current, at: walked, token) else { return nil }
            current = next
            walked = walked.appending(token)
        }
        return current
    }

    /// The member or element `token` of `container` (found at `location`). `JSONObject` lookup is a
    /// linear search, so large objects (a `$defs` with thousands of entries) get an index, built once.
    func child(of container: JSONValue, at location: Location, _ token: String) -> JSONValue? {
        switch container {
        case .object(let object):
            guard object.count > 32 else { return object[token] }
            if let index = largeObjects[location] { return index[token] }
            var index: [String: JSONValue] = [:]
            index.reserveCapacity(object.count)
            for member in object.storage { index[member.key] = member.value }
            largeObjects[location] = index
            return index[token]
        case .array(let array):
            guard let position = Int(token), array.indices.contains(position) else { return nil }
            return array[position]
        default:
            return nil
        }
    }

    // MARK: References

    /// Resolves a `$ref`/`$dynamicRef` against `base` to a schema location; throws for a reference to a
    /// document that is not part of the schema (never fetched) or to a place that does not exist.
    func resolveReference(_ text: String, base: SchemaURI, schemaPath: String, keyword: String) throws(SchemaCompileError) -> Location {
        let target = base.resolving(SchemaURI(parsing: text))
        let documentURI = target.withoutFragment.text
        let fragment = SchemaURI.percentDecoded(target.fragment ?? "")
        var resource = resources[documentURI]
        if resource == nil, let metaschema = SchemaMetaschemas.document(for: documentURI) {
            documents.append(metaschema)
            let location = Location(document: documents.count - 1, pointer: "")
            let index = registerResource(documentURI, at: location)
            discover(metaschema, at: location, base: target.withoutFragment, dialect: .draft2020_12, resource: index, isDocumentRoot: true)
            resource = index
        }
        guard let resource else {
            if let scheme = target.scheme, scheme == "http" || scheme == "https" {
                throw error(schemaPath, "\(keyword) \"\(text)\" is a network reference; remote references are never fetched")
            }
            throw error(
                schemaPath, "\(keyword) \"\(text)\" refers to a document that is not part of this schema; external references are never fetched")
        }
        let resourceLocation = resourceLocations[resource]
        if fragment.isEmpty { return resourceLocation }
        if fragment.hasPrefix("/") {
            var location = resourceLocation
            guard var current = value(at: resourceLocation) else {
                throw error(schemaPath, "\(keyword) \"\(text)\" cannot be resolved")
            }
            for token in SchemaPointer.tokens(fragment) {
                guard let next = child(of: current, at: location, token) else {
                    throw error(schemaPath, "\(keyword) \"\(text)\" points to nothing in the schema")
                }
                current = next
                location = location.appending(token)
            }
            return location
        }
        if let anchor = anchors[documentURI + "#" + fragment] { return anchor }
        throw error(schemaPath, "\(keyword) \"\(text)\" names no $anchor in the schema")
    }

    // MARK: Nodes

    /// The index of the node for the schema at `location`, queued for building if it is new.
    func compileNode(_ location: Location) throws(SchemaCompileError) -> Int {
        if let index = nodeIndex[location] { return index }
        guard value(at: location) != nil else {
            throw error(location.pointer, "no schema at \(location.pointer)")
        }
        let index = parts.count
        parts.append(nil)
        nodeIndex[location] = index
        pending.append(location)
        return index
    }

    /// Builds every queued node (and those they queue).
    func buildPending() throws(SchemaCompileError) {
        while let location = pending.popLast() {
            try build(location)
        }
    }

    func build(_ location: Location) throws(SchemaCompileError) {
        guard let index = nodeIndex[location], let value = value(at: location) else { return }
        let locationInfo = locationInfo(location, value: value)
        var node = SchemaNodeParts()
        node.location = location.pointer
        node.resource = locationInfo.resource
        switch value {
        case .bool(true):
            node.isTrue = true
        case .bool(false):
            node.isFalse = true
        case .object(let object):
            try compileObject(object, at: location, info: locationInfo, into: &node)
            if node.isEffectivelyEmpty { node.isTrue = true }
        default:
            throw error(location.pointer, "a schema must be an object or a boolean, got \(value.typeName)")
        }
        parts[index] = node
    }

    func compileObject(_ object: JSONObject, at location: Location, info: LocationInfo, into node: inout SchemaNodeParts) throws(SchemaCompileError) {
        let path = location.pointer
        let modern = info.dialect == .draft2020_12

        func keywordPath(_ keyword: String) -> String { path + "/" + SchemaPointer.escape(keyword) }

        func subschema(_ keyword: String) throws(SchemaCompileError) -> Int? {
            guard let member = object[keyword] else { return nil }
            guard member.isSchemaShaped else {
                throw error(keywordPath(keyword), "\(keyword) must be a schema (an object or a boolean)")
            }
            return try compileNode(location.appending(keyword))
        }

        func schemaArray(_ keyword: String, allowEmpty: Bool = false) throws(SchemaCompileError) -> [Int]? {
            guard let member = object[keyword] else { return nil }
            guard case .array(let elements) = member, allowEmpty || !elements.isEmpty else {
                throw error(keywordPath(keyword), "\(keyword) must be a non-empty array of schemas")
            }
            var indices: [Int] = []
            let base = location.appending(keyword)
            for (position, element) in elements.enumerated() {
                guard element.isSchemaShaped else {
                    throw error(base.pointer + "/\(position)", "\(keyword)[\(position)] must be a schema (an object or a boolean)")
                }
                indices.append(try compileNode(base.appending(String(position))))
            }
            return indices
        }

        func schemaMap(_ keyword: String) throws(SchemaCompileError) -> [(String, Int)]? {
            guard let member = object[keyword] else { return nil }
            guard case .object(let map) = member else {
                throw error(keywordPath(keyword), "\(keyword) must be an object whose values are schemas")
            }
            var entries: [(String, Int)] = []
            let base = location.appending(keyword)
            for (name, element) in map.storage {
                guard element.isSchemaShaped else {
                    throw error(base.appending(name).pointer, "\(keyword)/\(name) must be a schema (an object or a boolean)")
                }
                entries.append((name, try compileNode(base.appending(name))))
            }
            return entries
        }

        func number(_ keyword: String) throws(SchemaCompileError) -> JSONNumber? {
            guard let member = object[keyword] else { return nil }
            guard case .number(let number) = member else { throw error(keywordPath(keyword), "\(keyword) must be a number") }
            return number
        }

        func count(_ keyword: String) throws(SchemaCompileError) -> Int? {
            guard let member = object[keyword] else { return nil }
            guard case .number(let number) = member, number.isInteger, !number.text.hasPrefix("-") || number.doubleValue == 0 else {
                throw error(keywordPath(keyword), "\(keyword) must be a non-negative integer")
            }
            return number.intValue ?? Int.max
        }

        func strings(_ value: JSONValue, _ keywordPath: String, _ what: String) throws(SchemaCompileError) -> [String] {
            guard case .array(let elements) = value else { throw error(keywordPath, "\(what) must be an array of strings") }
            var names: [String] = []
            for element in elements {
                guard case .string(let name) = element else { throw error(keywordPath, "\(what) must be an array of strings") }
                if !names.contains(name) { names.append(name) }
            }
            return names
        }

        for key in object.keys {
            if Self.foreignKeywords.contains(key) { noteUnsupported(key) }
            if !modern && Self.modernKeywords.contains(key) { noteUnsupported(key) }
        }

        // References. draft-07: `$ref` overrides every sibling keyword.
        if let member = object["$ref"] {
            guard case .string(let text) = member else { throw error(keywordPath("$ref"), "$ref must be a string") }
            let target = try resolveReference(text, base: info.base, schemaPath: keywordPath("$ref"), keyword: "$ref")
            node.reference = try compileNode(target)
            if !modern { return }
        }
        if modern, let member = object["$dynamicRef"] {
            guard case .string(let text) = member else { throw error(keywordPath("$dynamicRef"), "$dynamicRef must be a string") }
            let target = try resolveReference(text, base: info.base, schemaPath: keywordPath("$dynamicRef"), keyword: "$dynamicRef")
            var anchor: String?
            let fragment = SchemaURI.percentDecoded(info.base.resolving(SchemaURI(parsing: text)).fragment ?? "")
            if !fragment.isEmpty, !fragment.hasPrefix("/"), case .string(let declared)? = value(at: target)?["$dynamicAnchor"],
                declared == fragment
            {
                anchor = fragment
                usedDynamicAnchors.insert(fragment)
            }
            node.dynamicReference = SchemaDynamicReference(target: try compileNode(target), anchor: anchor)
        }

        // Any instance.
        if let member = object["type"] {
            var names: [String] = []
            switch member {
            case .string(let name):
                names = [name]
            case .array(let elements):
                for element in elements {
                    guard case .string(let name) = element else { throw error(keywordPath("type"), "type must be a string or an array of strings") }
                    if !names.contains(name) { names.append(name) }
                }
            default:
                throw error(keywordPath("type"), "type must be a string or an array of strings")
            }
            guard !names.isEmpty else { throw error(keywordPath("type"), "type must name at least one type") }
            for name in names {
                guard let bit = SchemaType.bit(named: name) else {
                    throw error(keywordPath("type"), "unknown type \"\(name)\" (expected null, boolean, object, array, number, string or integer)")
                }
                node.types |= bit
            }
            node.typeNames = names
        }
        if let member = object["const"] { node.constValue = member }
        if let member = object["enum"] {
            guard case .array(let values) = member else { throw error(keywordPath("enum"), "enum must be an array") }
            node.enumValues = values
        }

        // Numbers.
        var numbers = SchemaNumberChecks.Draft()
        var hasNumbers = false
        var minimum = try number("minimum")
        var maximum = try number("maximum")
        var exclusiveMinimum: JSONNumber?
        var exclusiveMaximum: JSONNumber?
        // draft-04's boolean form: `exclusiveMinimum: true` makes `minimum` exclusive.
        if case .bool(let exclusive)? = object["exclusiveMinimum"] {
            if exclusive, let bound = minimum {
                exclusiveMinimum = bound
                minimum = nil
            }
        } else {
            exclusiveMinimum = try number("exclusiveMinimum")
        }
        if case .bool(let exclusive)? = object["exclusiveMaximum"] {
            if exclusive, let bound = maximum {
                exclusiveMaximum = bound
                maximum = nil
            }
        } else {
            exclusiveMaximum = try number("exclusiveMaximum")
        }
        if let minimum {
            numbers.minimum = SchemaNumberBound(minimum)
            hasNumbers = true
        }
        if let maximum {
            numbers.maximum = SchemaNumberBound(maximum)
            hasNumbers = true
        }
        if let exclusiveMinimum {
            numbers.exclusiveMinimum = SchemaNumberBound(exclusiveMinimum)
            hasNumbers = true
        }
        if let exclusiveMaximum {
            numbers.exclusiveMaximum = SchemaNumberBound(exclusiveMaximum)
            hasNumbers = true
        }
        if let multipleOf = try number("multipleOf") {
            guard !multipleOf.text.hasPrefix("-"), !Self.isZero(multipleOf) else {
                throw error(keywordPath("multipleOf"), "multipleOf must be greater than 0")
            }
            numbers.multipleOf = multipleOf
            hasNumbers = true
        }
        if hasNumbers { node.numbers = SchemaNumberChecks(numbers) }

        // Strings.
        var stringChecks = SchemaStringChecks.Draft()
        var hasStrings = false
        if let minLength = try count("minLength") {
            stringChecks.minLength = minLength
            hasStrings = true
        }
        if let maxLength = try count("maxLength") {
            stringChecks.maxLength = maxLength
            hasStrings = true
        }
        if let member = object["pattern"] {
            guard case .string(let source) = member else { throw error(keywordPath("pattern"), "pattern must be a string") }
            do {
                stringChecks.pattern = try ECMARegex(source)
            } catch {
                throw self.error(keywordPath("pattern"), "pattern \(JSONValue.string(source).jsonString) is not a valid regular expression: \(error.message)")
            }
            hasStrings = true
        }
        if let member = object["format"] {
            guard case .string(let name) = member else { throw error(keywordPath("format"), "format must be a string") }
            if assertFormat, let format = SchemaFormat(rawValue: name) {
                stringChecks.format = format
                hasStrings = true
            }
        }
        if hasStrings { node.strings = SchemaStringChecks(stringChecks) }

        // Arrays.
        var arrays = SchemaArrayChecks.Draft()
        var hasArrays = false
        var itemsIsArray = false
        if case .array? = object["items"], modern ? object["prefixItems"] == nil : true {
            // draft-07's array form (also read in a 2020-12 schema without `prefixItems`, where older tool
            // schemas still use it): a schema per position, then `additionalItems` for the rest.
            itemsIsArray = true
            arrays.prefixItems = try schemaArray("items", allowEmpty: true) ?? []
            arrays.prefixKeyword = "items"
            if let additional = try subschema("additionalItems") {
                arrays.items = additional
                arrays.itemsKeyword = "additionalItems"
            }
            hasArrays = true
        } else {
            if modern, let prefix = try schemaArray("prefixItems", allowEmpty: true) {
                arrays.prefixItems = prefix
                hasArrays = true
            }
            if let items = try subschema("items") {
                arrays.items = items
                hasArrays = true
            }
            if object["additionalItems"] != nil && !itemsIsArray { noteUnsupportedIfModern(modern, "additionalItems") }
        }
        if let contains = try subschema("contains") {
            arrays.contains = contains
            hasArrays = true
            if modern {
                arrays.minContains = try count("minContains")
                arrays.maxContains = try count("maxContains")
            }
        }
        if let minItems = try count("minItems") {
            arrays.minItems = minItems
            hasArrays = true
        }
        if let maxItems = try count("maxItems") {
            arrays.maxItems = maxItems
            hasArrays = true
        }
        if let member = object["uniqueItems"] {
            guard case .bool(let unique) = member else { throw error(keywordPath("uniqueItems"), "uniqueItems must be a boolean") }
            if unique {
                arrays.uniqueItems = true
                hasArrays = true
            }
        }
        if hasArrays { node.arrays = SchemaArrayChecks(arrays) }

        // Objects.
        var objects = SchemaObjectChecks.Draft()
        var hasObjects = false
        if let properties = try schemaMap("properties") {
            objects.propertyNames = properties.map(\.0)
            objects.propertyNodes = properties.map(\.1)
            if properties.count > 16 {
                var lookup: [String: Int] = [:]
                for (position, name) in objects.propertyNames.enumerated() { lookup[name] = position }
                objects.propertyLookup = lookup
            }
            hasObjects = true
        }
        if let member = object["patternProperties"] {
            guard case .object(let map) = member else {
                throw error(keywordPath("patternProperties"), "patternProperties must be an object whose values are schemas")
            }
            let base = location.appending("patternProperties")
            for (source, element) in map.storage {
                guard element.isSchemaShaped else {
                    throw error(base.appending(source).pointer, "patternProperties/\(source) must be a schema (an object or a boolean)")
                }
                let regex: ECMARegex
                do {
                    regex = try ECMARegex(source)
                } catch {
                    throw self.error(base.appending(source).pointer, "pattern \(JSONValue.string(source).jsonString) is not a valid regular expression: \(error.message)")
                }
                objects.patternProperties.append((regex, try compileNode(base.appending(source))))
            }
            hasObjects = true
        }
        if let additional = try subschema("additionalProperties") {
            objects.additionalProperties = additional
            hasObjects = true
        }
        if let names = try subschema("propertyNames") {
            objects.propertyNamesSchema = names
            hasObjects = true
        }
        if let member = object["required"] {
            if case .bool = member {
                // draft-03's `"required": true` inside a property: not part of either dialect.
                noteUnsupported("required (boolean form)")
            } else {
                objects.required = try strings(member, keywordPath("required"), "required")
                hasObjects = !objects.required.isEmpty || hasObjects
            }
        }
        for name in objects.required {
            if let position = objects.propertyNames.firstIndex(of: name), position < 64 {
                objects.requiredMask |= 1 << UInt64(position)
            } else {
                objects.requiredOthers.append(name)
            }
        }
        if let minProperties = try count("minProperties") {
            objects.minProperties = minProperties
            hasObjects = true
        }
        if let maxProperties = try count("maxProperties") {
            objects.maxProperties = maxProperties
            hasObjects = true
        }
        if modern, let member = object["dependentRequired"] {
            guard case .object(let map) = member else {
                throw error(keywordPath("dependentRequired"), "dependentRequired must be an object whose values are arrays of strings")
            }
            for (key, value) in map.storage {
                let names = try strings(value, keywordPath("dependentRequired") + "/" + SchemaPointer.escape(key), "dependentRequired/\(key)")
                objects.dependentRequired.append((key, names, "dependentRequired"))
            }
            hasObjects = true
        }
        if modern, let dependents = try schemaMap("dependentSchemas") {
            objects.dependentSchemas.append(contentsOf: dependents.map { (key: $0.0, node: $0.1) })
            hasObjects = true
        }
        if let member = object["dependencies"] {
            guard case .object(let map) = member else {
                throw error(keywordPath("dependencies"), "dependencies must be an object")
            }
            let base = location.appending("dependencies")
            for (key, value) in map.storage {
                if case .array = value {
                    let names = try strings(value, base.appending(key).pointer, "dependencies/\(key)")
                    objects.dependentRequired.append((key, names, "dependencies"))
                } else if value.isSchemaShaped {
                    objects.dependentSchemas.append((key, try compileNode(base.appending(key))))
                } else {
                    throw error(base.appending(key).pointer, "dependencies/\(key) must be an array of strings or a schema")
                }
            }
            hasObjects = true
        }
        if hasObjects { node.objects = SchemaObjectChecks(objects) }

        // In-place applicators.
        node.allOf = try schemaArray("allOf") ?? []
        node.anyOf = try schemaArray("anyOf") ?? []
        node.oneOf = try schemaArray("oneOf") ?? []
        node.not = try subschema("not")
        if let condition = try subschema("if") {
            node.ifSchema = condition
            node.thenSchema = try subschema("then")
            node.elseSchema = try subschema("else")
        }
        if modern {
            node.unevaluatedProperties = try subschema("unevaluatedProperties")
            node.unevaluatedItems = try subschema("unevaluatedItems")
        }
        node.anyOfTypes = Self.typeOnlyBranches(object["anyOf"])
        node.oneOfTypes = Self.typeOnlyBranches(object["oneOf"])
    }

    func noteUnsupportedIfModern(_ modern: Bool, _ keyword: String) {
        if modern { noteUnsupported(keyword) }
    }

    /// When every branch of an anyOf/oneOf only states a type (plus annotations), the types, for a
    /// message like "must be string or null".
    static func typeOnlyBranches(_ value: JSONValue?) -> [String]? {
        guard case .array(let branches)? = value, !branches.isEmpty else { return nil }
        let annotations: Set<String> = ["type", "title", "description", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly"]
        var names: [String] = []
        for branch in branches {
            guard case .object(let object) = branch, object.keys.allSatisfy(annotations.contains) else { return nil }
            switch object["type"] {
            case .string(let name)?:
                if !names.contains(name) { names.append(name) }
            case .array(let list)?:
                for case .string(let name) in list where !names.contains(name) { names.append(name) }
            default:
                return nil
            }
        }
        return names
    }

    // MARK: Declared properties

    /// The properties of the root (and of a root `$ref` and `allOf` branches), for telling an agent the
    /// valid arguments.
    func declaredProperties(_ root: Location) -> [SchemaPropertySummary] {
        var summaries: [SchemaPropertySummary] = []
        var required = Set<String>()
        var visited = Set<Location>()

        func collect(_ location: Location, depth: Int) {
            guard depth < 8, !visited.contains(location), case .object(let object)? = value(at: location) else { return }
            visited.insert(location)
            let locationInfo = info[location]
            if case .array(let names)? = object["required"] {
                for case .string(let name) in names { required.insert(name) }
            }
            if case .object(let properties)? = object["properties"] {
                let base = location.appending("properties")
                for (name, schema) in properties.storage where !summaries.contains(where: { $0.name == name }) {
                    let propertyLocation = base.appending(name)
                    summaries.append(SchemaPropertySummary(
                        name: name, type: typeDescription(schema, at: propertyLocation, depth: 0), required: false,
                        description: describedBy(schema, at: propertyLocation)))
                }
            }
            if case .string(let reference)? = object["$ref"], let locationInfo,
                let target = try? resolveReference(reference, base: locationInfo.base, schemaPath: "", keyword: "$ref")
            {
                collect(target, depth: depth + 1)
            }
            if case .array(let branches)? = object["allOf"] {
                let base = location.appending("allOf")
                for position in branches.indices { collect(base.appending(String(position)), depth: depth + 1) }
            }
        }

        collect(root, depth: 0)
        for index in summaries.indices { summaries[index].required = required.contains(summaries[index].name) }
        return summaries
    }

    /// The target of a schema's `$ref`, if it resolves.
    func referenceTarget(_ schema: JSONValue, at location: Location) -> (JSONValue, Location)? {
        guard case .string(let reference)? = schema["$ref"] else { return nil }
        let base = info[location]?.base ?? info[Location(document: location.document, pointer: "")]?.base ?? Self.localBase
        guard let target = try? resolveReference(reference, base: base, schemaPath: "", keyword: "$ref"),
            let value = value(at: target)
        else { return nil }
        return (value, target)
    }

    func describedBy(_ schema: JSONValue, at location: Location) -> String? {
        if case .string(let description)? = schema["description"] { return description }
        if case .string(let title)? = schema["title"] { return title }
        if let (target, targetLocation) = referenceTarget(schema, at: location), location != targetLocation {
            if case .string(let description)? = target["description"] { return description }
        }
        return nil
    }

    /// A readable type for a property schema: "string", "integer", "string | null", "array of string", "any".
    func typeDescription(_ schema: JSONValue, at location: Location, depth: Int) -> String {
        guard depth < 8, case .object(let object) = schema else { return "any" }
        func joined(_ parts: [String]) -> String {
            var unique: [String] = []
            for part in parts where !unique.contains(part) { unique.append(part) }
            if unique.isEmpty || unique.contains("any") { return "any" }
            return unique.joined(separator: " | ")
        }
        var names: [String] = []
        switch object["type"] {
        case .string(let name)?: names = [name]
        case .array(let list)?: names = list.compactMap(\.stringValue)
        default: break
        }
        if !names.isEmpty {
            return joined(names.map { name in
                guard name == "array", let items = object["items"], items.isSchemaShaped, case .object = items else { return name }
                let itemType = typeDescription(items, at: location.appending("items"), depth: depth + 1)
                return itemType == "any" ? "array" : (itemType.contains(" | ") ? "array of (\(itemType))" : "array of \(itemType)")
            })
        }
        if let (target, targetLocation) = referenceTarget(schema, at: location) {
            return typeDescription(target, at: targetLocation, depth: depth + 1)
        }
        if case .array(let values)? = object["enum"], !values.isEmpty {
            return joined(values.map(Self.instanceTypeName))
        }
        if let constant = object["const"] { return Self.instanceTypeName(constant) }
        for keyword in ["anyOf", "oneOf"] {
            if case .array(let branches)? = object[keyword], !branches.isEmpty {
                let base = location.appending(keyword)
                return joined(branches.enumerated().map { typeDescription($0.element, at: base.appending(String($0.offset)), depth: depth + 1) })
            }
        }
        if case .array(let branches)? = object["allOf"] {
            let base = location.appending("allOf")
            for (position, branch) in branches.enumerated() {
                let type = typeDescription(branch, at: base.appending(String(position)), depth: depth + 1)
                if type != "any" { return type }
            }
        }
        if object["properties"] != nil { return "object" }
        if object["items"] != nil || object["prefixItems"] != nil { return "array" }
        return "any"
    }

    /// True for any spelling of zero (`0`, `-0`, `0.0`, `0e5`).
    static func isZero(_ number: JSONNumber) -> Bool {
        number.decimalForm { _ in }.isZero
    }

    /// The JSON type name of an instance, "integer" for integral numbers.
    static func instanceTypeName(_ value: JSONValue) -> String {
        if case .number(let number) = value { return number.isInteger ? "integer" : "number" }
        return value.typeName
    }
}

extension SchemaNodeParts {
    init(isTrue: Bool) {
        self.init()
        self.isTrue = isTrue
    }

    /// True for an object schema with no keyword that constrains anything (`{}`, or annotations only).
    var isEffectivelyEmpty: Bool {
        !isFalse && types == 0 && constValue == nil && enumValues == nil && numbers == nil && strings == nil
            && arrays == nil && objects == nil && reference == nil && dynamicReference == nil && allOf.isEmpty
            && anyOf.isEmpty && oneOf.isEmpty && not == nil && ifSchema == nil && unevaluatedProperties == nil
            && unevaluatedItems == nil
    }
}

extension JSONValue {
    /// An object or a boolean: the two shapes a schema can have.
    var isSchemaShaped: Bool {
        switch self {
        case .object, .bool: return true
        default: return false
        }
    }
}

