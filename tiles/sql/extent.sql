-- The extent (EPSG:4326) of the districts valid in the active generation.
WITH gen AS (SELECT id FROM generations WHERE active)
SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
FROM (SELECT ST_Extent(a.geom) AS e FROM areas a, gen
      WHERE a.level = 'district' AND a.generation_low <= gen.id
        AND (a.generation_high IS NULL OR a.generation_high >= gen.id)) AS x
